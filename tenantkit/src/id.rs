//! Typed identifiers.
//!
//! Every id is a newtype over a [`Uuid`] (version 7, so ids sort by creation
//! time and keyset pagination is cheap). A [`UserId`] can never be passed where
//! a [`TenantId`] is expected.
//!
//! ```
//! use tenantkit::TenantId;
//!
//! let id = TenantId::new();
//! let parsed: TenantId = id.to_string().parse().unwrap();
//! assert_eq!(id, parsed);
//! assert!("not-a-uuid".parse::<TenantId>().is_err());
//! ```

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing [`Uuid`].
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying [`Uuid`].
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_newtype!(
    /// Identifies a tenant (an organisation, a customer account).
    TenantId
);
id_newtype!(
    /// Identifies a user within its tenant.
    UserId
);
id_newtype!(
    /// Identifies an API key within its tenant.
    ApiKeyId
);
id_newtype!(
    /// Identifies an audit-log entry.
    AuditEntryId
);
