//! What a statement's text must be, checked before it runs: the placeholders
//! it uses (a tenant-scoped statement must use `$1`), the verb a read or an
//! audited write must start with, and the tables an operational write may
//! touch. A statement that fails a check is a bug in the code that built it,
//! so each check panics rather than returning an error.

use super::operational::OperationalTable;

/// The numbers of the placeholders (`$1`, `$12`, ...) in `sql`, leaving out
/// whatever only looks like one: inside a string literal, a quoted
/// identifier, a dollar-quoted string or a comment.
pub(super) fn placeholders(sql: &str) -> impl Iterator<Item = u32> + '_ {
    let bytes = sql.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let rest = &sql[i..];
            match bytes[i] {
                quote @ (b'\'' | b'"') => {
                    // Up to the closing quote; a doubled one is an escape.
                    i += 1;
                    while i < bytes.len() {
                        if bytes[i] == quote {
                            if bytes.get(i + 1) == Some(&quote) {
                                i += 2;
                                continue;
                            }
                            break;
                        }
                        i += 1;
                    }
                    i += 1;
                }
                b'-' if rest.starts_with("--") => {
                    i += rest.find('\n').unwrap_or(rest.len());
                }
                b'/' if rest.starts_with("/*") => {
                    i += rest[2..].find("*/").map_or(rest.len(), |end| end + 4);
                }
                b'$' => {
                    let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                    if digits > 0 {
                        i += 1 + digits;
                        if let Ok(n) = rest[1..=digits].parse() {
                            return Some(n);
                        }
                        continue;
                    }
                    // `$tag$ ... $tag$` (or `$$ ... $$`): a string.
                    let tag_len = rest[1..]
                        .bytes()
                        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                        .count();
                    if rest.as_bytes().get(1 + tag_len) == Some(&b'$') {
                        let tag = &rest[..tag_len + 2];
                        i += tag.len();
                        i += sql[i..]
                            .find(tag)
                            .map_or(sql.len() - i, |end| end + tag.len());
                    } else {
                        i += 1;
                    }
                }
                _ => i += 1,
            }
        }
        None
    })
}

/// Panics unless the statement is an `INSERT INTO`, `UPDATE` or
/// `DELETE FROM` of `table`.
pub(super) fn expect_operational(sql: &str, table: OperationalTable) {
    let words: Vec<&str> = sql.split_whitespace().take(3).collect();
    let target = match words.as_slice() {
        [verb, into, t, ..]
            if verb.eq_ignore_ascii_case("INSERT") && into.eq_ignore_ascii_case("INTO") =>
        {
            *t
        }
        [verb, from, t, ..]
            if verb.eq_ignore_ascii_case("DELETE") && from.eq_ignore_ascii_case("FROM") =>
        {
            *t
        }
        [verb, t, ..] if verb.eq_ignore_ascii_case("UPDATE") => *t,
        _ => "",
    };
    let target = target.split('(').next().unwrap_or_default();
    assert!(
        target == table.name(),
        "an operational write must be an INSERT INTO, UPDATE or DELETE FROM `{}`: {}",
        table.name(),
        sql
    );
}

/// Panics unless every table the statement writes is one of `tables`
/// (and it writes at least one).
pub(super) fn expect_operational_all(sql: &str, tables: &[OperationalTable]) {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let mut writes = 0;
    for (i, word) in words.iter().enumerate() {
        let next = |k: usize| words.get(i + k).copied().unwrap_or_default();
        let target = if word.eq_ignore_ascii_case("INSERT") && next(1).eq_ignore_ascii_case("INTO")
            || word.eq_ignore_ascii_case("DELETE") && next(1).eq_ignore_ascii_case("FROM")
        {
            next(2)
        } else if word.eq_ignore_ascii_case("UPDATE")
            // `ON CONFLICT … DO UPDATE` and the row locks `FOR UPDATE`,
            // `FOR NO KEY UPDATE` write nothing else.
            && !(i > 0 && ["DO", "FOR", "KEY"].iter().any(|w| words[i - 1].eq_ignore_ascii_case(w)))
        {
            next(1)
        } else {
            continue;
        };
        assert!(
            tables.iter().any(|t| t.name() == target),
            "an operational write may only write {:?}, not `{target}`: {}",
            tables.iter().map(|t| t.name()).collect::<Vec<_>>(),
            sql
        );
        writes += 1;
    }
    assert!(writes > 0, "an operational write must write: {}", sql);
}

/// Panics unless the statement starts with `verb`: reads cannot write, and
/// writes go only through the audited methods.
pub(super) fn expect_verb(sql: &str, verb: &str) {
    let first = sql.split_whitespace().next().unwrap_or_default();
    assert!(
        first.eq_ignore_ascii_case(verb),
        "expected a {verb} statement here (writes must go through TenantTx::insert/update/delete): {}",
        sql
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: OperationalTable = OperationalTable::new("events");
    const COUNTS: OperationalTable = OperationalTable::new("event_counts");

    fn numbers(sql: &str) -> Vec<u32> {
        placeholders(sql).collect()
    }

    #[test]
    fn placeholders_are_read_as_sql_reads_them() {
        assert_eq!(
            numbers("SELECT * FROM t WHERE tenant_id = $1 AND a = $2"),
            [1, 2]
        );
        assert_eq!(numbers("SELECT $10, $12"), [10, 12], "`$10` is not `$1`");
        assert_eq!(numbers("SELECT 1 -- tenant_id = $1\n, $2"), [2]);
        assert_eq!(numbers("SELECT /* $1 */ $3"), [3]);
        assert_eq!(numbers("SELECT '$1', 'it''s $1', $4"), [4]);
        assert_eq!(numbers(r#"SELECT "$1" FROM t WHERE x = $5"#), [5]);
        assert_eq!(numbers("SELECT $$ $1 $$, $tag$ $1 $tag$, $6"), [6]);
        assert_eq!(numbers("SELECT $1::uuid"), [1]);
        assert!(numbers("SELECT 'unterminated $1").is_empty());
    }

    #[test]
    fn a_statement_writing_only_its_operational_tables_passes() {
        expect_operational_all(
            "WITH a AS (INSERT INTO events (tenant_id) SELECT $1), \
             b AS (INSERT INTO event_counts(tenant_id) SELECT $1 ON CONFLICT (tenant_id) DO UPDATE SET count = 1) \
             SELECT 1",
            &[EVENTS, COUNTS],
        );
    }

    #[test]
    fn row_locks_are_not_writes() {
        expect_operational_all(
            "WITH a AS (UPDATE events e SET n = 1 FROM (SELECT id FROM events WHERE tenant_id = $1 \
             FOR UPDATE SKIP LOCKED) d, (SELECT 1 FROM users FOR NO KEY UPDATE) u WHERE e.id = d.id) \
             SELECT 1",
            &[EVENTS],
        );
    }

    #[test]
    #[should_panic(expected = "not `audit_logs`")]
    fn a_write_to_another_table_is_refused() {
        expect_operational_all(
            "WITH a AS (INSERT INTO events SELECT $1), b AS (DELETE FROM audit_logs WHERE tenant_id = $1) SELECT 1",
            &[EVENTS],
        );
    }

    #[test]
    #[should_panic(expected = "not `users`")]
    fn an_update_is_checked_too() {
        expect_operational_all(
            "WITH a AS (UPDATE users SET role = 'owner' WHERE tenant_id = $1) INSERT INTO events SELECT $1",
            &[EVENTS],
        );
    }

    #[test]
    #[should_panic(expected = "must write")]
    fn a_read_is_not_an_operational_write() {
        expect_operational_all("SELECT * FROM events WHERE tenant_id = $1", &[EVENTS]);
    }
}
