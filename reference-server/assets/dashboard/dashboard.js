// The tenantkit dashboard: analytics (with the live stream), webhooks and
// the audit trail of one tenant, through the public API with the signed-in
// token only. No build step; uPlot is the one library (vendored).
(() => {
  'use strict';

  const TOKEN_KEY = 'tenantkit.dashboard.token';
  // The provider sign-in in progress (verifier, state) and the session it
  // gave (refresh token, endpoints), both in this tab's session storage.
  const PKCE_KEY = 'tenantkit.dashboard.pkce';
  const SESSION_KEY = 'tenantkit.dashboard.session';
  const $ = (selector, root = document) => root.querySelector(selector);
  const state = {
    token: null,
    ws: null,
    wsRetry: 0,
    wsTimer: null,
    liveTotal: 0,
    live: [[], []],
    seriesChart: null,
    liveChart: null,
    auditBefore: null,
    openEndpoint: null,
    refreshTimer: null,
  };

  // ---- errors: every failure is shown, none swallowed -------------------

  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  function showError(err) {
    const problem = err.problem || { title: 'Error', detail: String(err.message || err) };
    let title = problem.title || 'Error';
    let detail = problem.detail || '';
    if (err.status === 401) {
      title = 'Signed out';
      detail = `${detail}. Sign in again with a fresh token.`;
      signOut(false);
    } else if (err.status === 402) {
      title = 'Not included in your plan';
      if (problem.upgrade) detail = `${detail}. To upgrade: ${problem.upgrade}`;
    } else if (err.status === 403) {
      title = 'Not allowed';
    }
    $('#error-title').textContent = title;
    $('#error-detail').textContent = detail;
    $('#error').dataset.status = String(err.status || 0);
    $('#error').hidden = false;
  }

  function clearError() {
    $('#error').hidden = true;
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.token}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, { title: 'Network error', detail: 'the server cannot be reached; check the connection' });
    }
    if (res.status === 204) return null;
    const type = res.headers.get('content-type') || '';
    const data = type.includes('json') ? await res.json() : { detail: await res.text() };
    if (!res.ok) throw new ApiError(res.status, { title: res.statusText, ...data });
    return data;
  }

  // Runs `work`, showing any failure.
  async function attempt(work) {
    try {
      return await work();
    } catch (err) {
      showError(err);
      return undefined;
    }
  }

  // ---- helpers ----------------------------------------------------------

  const number = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));
  const when = (t) => (t ? new Date(t).toLocaleString() : '–');

  function setStat(id, value) {
    const el = $(id);
    el.dataset.value = String(value);
    el.textContent = number(value);
  }

  function cell(text, className) {
    const td = document.createElement('td');
    td.textContent = text === null || text === undefined ? '–' : String(text);
    if (className) td.className = className;
    return td;
  }

  function button(label, onClick, attrs = {}) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    Object.entries(attrs).forEach(([k, v]) => b.setAttribute(k, v));
    b.addEventListener('click', onClick);
    return b;
  }

  function fillTable(table, rows) {
    const body = $('tbody', table);
    body.replaceChildren(...rows);
  }

  const pad = (n) => String(n).padStart(2, '0');
  const day = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const zone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

  // The days the range picker names, in the browser's time zone.
  function range() {
    const days = Number($('#range').value);
    const to = new Date();
    const from = new Date(to);
    from.setDate(from.getDate() - days + 1);
    return { from: day(from), to: day(to), tz: zone() };
  }

  function query(params) {
    return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v !== null && v !== undefined)).toString();
  }

  // ---- sign-in ------------------------------------------------------------

  function takeTokenFromFragment() {
    // The fragment never reaches the server; remove it from the address bar too.
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get('token');
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      history.replaceState(null, '', location.pathname + location.search);
    }
  }

  // ---- sign-in with the identity provider (Authorization Code + PKCE) ----

  const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const randomText = () => base64url(crypto.getRandomValues(new Uint8Array(32)));
  const redirectUri = () => location.origin + location.pathname;

  async function providerSettings() {
    const res = await fetch('/dashboard/sign-in', { headers: { Accept: 'application/json' } });
    if (res.status === 404) return null;
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => ({})));
    const settings = await res.json();
    const discovery = await fetch(`${settings.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
    if (!discovery.ok) throw new ApiError(discovery.status, { title: 'Identity provider unavailable', detail: 'its discovery document could not be read' });
    return { ...settings, ...(await discovery.json()), issuer: settings.issuer };
  }

  async function startProviderSignIn() {
    clearError();
    try {
      if (!window.crypto?.subtle) {
        throw new ApiError(0, { title: 'Sign-in unavailable', detail: 'signing in with the identity provider needs the dashboard served over https' });
      }
      const provider = await providerSettings();
      const verifier = randomText();
      const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
      const nonce = randomText();
      sessionStorage.setItem(PKCE_KEY, JSON.stringify({
        verifier, state: nonce, token_endpoint: provider.token_endpoint, client_id: provider.client_id,
        end_session_endpoint: provider.end_session_endpoint || null, redirect_uri: redirectUri(),
      }));
      const params = query({
        response_type: 'code', client_id: provider.client_id, redirect_uri: redirectUri(),
        scope: provider.scope, state: nonce, code_challenge: challenge, code_challenge_method: 'S256',
        resource: provider.audience,
      });
      location.assign(`${provider.authorization_endpoint}?${params}`);
    } catch (err) {
      showError(err);
    }
  }

  async function tokenRequest(endpoint, form) {
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams(form).toString(),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.access_token) {
      throw new ApiError(401, { title: 'Sign-in failed', detail: body.error_description || body.error || `the identity provider answered ${res.status}` });
    }
    return body;
  }

  // The access token is kept as the tab's token; a refresh token, if the
  // provider gave one, renews it shortly before it expires.
  function keepSession(tokens, pkce) {
    sessionStorage.setItem(TOKEN_KEY, tokens.access_token);
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || '{}');
    Object.assign(session, {
      token_endpoint: pkce.token_endpoint, client_id: pkce.client_id,
      end_session_endpoint: pkce.end_session_endpoint, redirect_uri: pkce.redirect_uri,
      id_token: tokens.id_token || session.id_token || null,
      refresh_token: tokens.refresh_token || session.refresh_token || null,
    });
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    scheduleRefresh();
  }

  async function finishProviderSignIn() {
    const params = new URLSearchParams(location.search);
    if (!params.has('code') && !params.has('error')) return;
    history.replaceState(null, '', location.pathname);
    const pkce = JSON.parse(sessionStorage.getItem(PKCE_KEY) || 'null');
    sessionStorage.removeItem(PKCE_KEY);
    try {
      if (params.has('error')) {
        throw new ApiError(401, { title: 'Sign-in failed', detail: params.get('error_description') || params.get('error') });
      }
      if (!pkce || params.get('state') !== pkce.state) {
        throw new ApiError(401, { title: 'Sign-in failed', detail: 'the answer does not belong to a sign-in started here' });
      }
      const tokens = await tokenRequest(pkce.token_endpoint, {
        grant_type: 'authorization_code', code: params.get('code'), redirect_uri: pkce.redirect_uri,
        client_id: pkce.client_id, code_verifier: pkce.verifier,
      });
      keepSession(tokens, pkce);
    } catch (err) {
      showError(err);
    }
  }

  function expiresAt(token) {
    try {
      const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
      return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
    } catch {
      return null;
    }
  }

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    const token = sessionStorage.getItem(TOKEN_KEY);
    const expires = token && expiresAt(token);
    if (!expires) return;
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    // Renew 30 s early with the refresh token; without one, sign out at expiry.
    const at = session?.refresh_token ? expires - 30000 : expires;
    state.refreshTimer = setTimeout(refreshOrExpire, Math.max(0, at - Date.now()));
  }

  async function refreshOrExpire() {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    if (session?.refresh_token) {
      try {
        const tokens = await tokenRequest(session.token_endpoint, {
          grant_type: 'refresh_token', refresh_token: session.refresh_token, client_id: session.client_id,
        });
        keepSession(tokens, session);
        state.token = tokens.access_token;
        closeLive();
        openLive();
        return;
      } catch (err) {
        showError(err);
        return;
      }
    }
    showError(new ApiError(401, { title: 'Signed out', detail: 'your session has expired' }));
  }

  function signOut(clear = true) {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(SESSION_KEY);
    clearTimeout(state.refreshTimer);
    state.token = null;
    closeLive();
    $('#tabs').hidden = true;
    $('#sign-out').hidden = true;
    document.querySelectorAll('.tab').forEach((t) => { t.hidden = true; });
    $('#sign-in').hidden = false;
    if (clear) clearError();
    return session;
  }

  // Signing out of a provider session also ends it at the provider.
  function signOutEverywhere() {
    const session = signOut();
    if (session?.end_session_endpoint) {
      location.assign(`${session.end_session_endpoint}?${query({
        client_id: session.client_id, id_token_hint: session.id_token,
        post_logout_redirect_uri: session.redirect_uri,
      })}`);
    }
  }

  async function offerProviderSignIn() {
    try {
      const res = await fetch('/dashboard/sign-in', { headers: { Accept: 'application/json' } });
      $('#provider-sign-in').hidden = !res.ok;
    } catch {
      $('#provider-sign-in').hidden = true;
    }
  }

  async function signIn() {
    state.token = sessionStorage.getItem(TOKEN_KEY);
    if (!state.token) {
      $('#sign-in').hidden = false;
      return;
    }
    let tenant;
    try {
      tenant = await api('GET', '/tenant');
    } catch (err) {
      if (err.status === 400 || err.status === 404) {
        err.problem.detail = `${err.problem.detail}. Open the dashboard at your tenant's address, https://<subdomain>.<domain>/dashboard`;
      }
      showError(err);
      if (err.status !== 401) $('#sign-in').hidden = false;
      return;
    }
    $('#tenant-name').textContent = `· ${tenant.name} (${tenant.subdomain})`;
    document.body.dataset.tenant = tenant.id;
    $('#sign-in').hidden = true;
    $('#tabs').hidden = false;
    $('#sign-out').hidden = false;
    showTab('analytics');
    openLive();
  }

  // ---- tabs ---------------------------------------------------------------

  function showTab(name) {
    document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === name));
    document.querySelectorAll('.tab').forEach((t) => { t.hidden = t.id !== name; });
    if (name === 'analytics') loadAnalytics();
    if (name === 'webhooks') loadWebhooks();
    if (name === 'audit') loadAudit(true);
  }

  // ---- analytics ----------------------------------------------------------

  async function loadAnalytics() {
    const bounds = range();
    const cards = $('#analytics .cards');
    Object.assign(cards.dataset, bounds);
    const summary = await attempt(() => api('GET', `/analytics/summary?${query(bounds)}`));
    if (summary) {
      setStat('#stat-dau', summary.dau);
      setStat('#stat-mau', summary.mau);
      setStat('#stat-api-calls', summary.api_calls);
      setStat('#stat-page-views', summary.page_views);
      setStat('#stat-events', summary.events);
      fillTable($('#top-features'), summary.top_features.map((f) => {
        const tr = document.createElement('tr');
        tr.append(cell(f.name), cell(number(f.count), 'num'));
        return tr;
      }));
      cards.dataset.loaded = 'true';
    }
    await loadSeries();
  }

  async function loadSeries() {
    const metric = $('#metric').value;
    const hourly = $('#interval');
    // DAU is kept per day; hours over 30 days would pass the 1,000-point limit.
    const hourAllowed = metric !== 'dau' && Number($('#range').value) <= 30;
    hourly.querySelector('option[value="hour"]').disabled = !hourAllowed;
    if (!hourAllowed) hourly.value = 'day';
    const bounds = range();
    const points = await attempt(() => api('GET', `/analytics/timeseries?${query({ metric, interval: hourly.value, ...bounds })}`));
    if (!points) return;
    const data = [points.map((p) => Date.parse(p.t) / 1000), points.map((p) => p.value)];
    const el = $('#series-chart');
    el.dataset.points = String(points.length);
    if (state.seriesChart) state.seriesChart.destroy();
    state.seriesChart = new uPlot(chartOptions(el, metric.replace('_', ' '), '#3b6fd8'), data, el);
  }

  function chartOptions(el, label, colour) {
    return {
      width: Math.max(el.clientWidth, 300),
      height: 220,
      scales: { x: { time: true } },
      legend: { show: true },
      series: [{}, { label, stroke: colour, width: 2, fill: `${colour}22`, points: { show: false } }],
      axes: [{}, { size: 60 }],
    };
  }

  // ---- the live stream ----------------------------------------------------

  function setLiveStatus(text, kind) {
    const el = $('#live-status');
    el.textContent = text;
    el.dataset.state = kind;
  }

  function openLive() {
    closeLive();
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // Browsers cannot set headers on a WebSocket: the token goes as a subprotocol.
    const ws = new WebSocket(`${scheme}://${location.host}/ws/analytics`, ['tenantkit.v1', `bearer.${state.token}`]);
    state.ws = ws;
    setLiveStatus('connecting', 'connecting');
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === 'ready') {
        state.wsRetry = 0;
        setLiveStatus('live', 'live');
        setStat('#live-dau', message.dau_today);
        pushLivePoint(Date.now() / 1000, 0);
      } else if (message.type === 'update') {
        state.liveTotal += message.events;
        setStat('#live-total', state.liveTotal);
        setStat('#live-minute', message.events_last_minute);
        setStat('#live-dau', message.dau_today);
        $('#live-last').textContent = message.last_event_id || '–';
        pushLivePoint(Date.parse(message.at) / 1000, message.events);
      } else if (message.type === 'error') {
        showError({ problem: { title: 'Live stream', detail: message.detail } });
      }
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      onLiveClosed(event);
    };
  }

  async function onLiveClosed(event) {
    if (event.code === 4001) {
      showError(new ApiError(401, { title: 'Unauthorized', detail: 'the token has expired' }));
      setLiveStatus('closed: token expired', 'closed');
      return;
    }
    if (event.code === 4003) {
      setLiveStatus(`closed: ${event.reason}`, 'closed');
      showError({ problem: { title: 'Access revoked', detail: event.reason } });
      return;
    }
    // Anything else (network loss, server restart, idle, a refused
    // handshake): find out whether the API still takes the token, then retry.
    if (!state.token) return;
    try {
      await api('GET', '/tenant');
    } catch (err) {
      showError(err);
      if (err.status && err.status !== 0 && err.status < 500) {
        setLiveStatus('closed', 'closed');
        return;
      }
    }
    const delay = Math.min(30, 2 ** state.wsRetry);
    state.wsRetry += 1;
    setLiveStatus(`disconnected; reconnecting in ${delay} s`, 'reconnecting');
    state.wsTimer = setTimeout(() => { if (state.token) openLive(); }, delay * 1000);
  }

  function closeLive() {
    clearTimeout(state.wsTimer);
    if (state.ws) {
      const ws = state.ws;
      state.ws = null;
      ws.close(1000);
    }
  }

  function pushLivePoint(t, events) {
    const [xs, ys] = state.live;
    xs.push(t);
    ys.push(events);
    while (xs.length > 120) { xs.shift(); ys.shift(); }
    const el = $('#live-chart');
    if (!state.liveChart) {
      state.liveChart = new uPlot(chartOptions(el, 'events per second', '#1f9d55'), state.live, el);
    } else {
      state.liveChart.setData(state.live);
    }
  }

  // ---- webhooks (what Svix calls the App Portal) --------------------------

  async function loadWebhooks() {
    const page = await attempt(() => api('GET', '/webhooks?limit=100'));
    if (page) {
      fillTable($('#endpoints'), page.items.map((w) => {
        const tr = document.createElement('tr');
        tr.dataset.id = w.id;
        const status = w.status === 'disabled' ? `disabled (${w.disabled_reason || 'by you'})` : w.status;
        const actions = document.createElement('td');
        actions.append(
          button('Deliveries', () => loadDeliveries(w)),
          button('Rotate secret', () => rotateSecret(w)),
        );
        tr.append(cell(w.url, 'url'), cell(w.event_types.includes('*') ? 'all' : w.event_types.join(', ')), cell(status), actions);
        return tr;
      }));
    }
    await loadEventTypes();
    await loadDeadLetters();
    if (state.openEndpoint) await loadDeliveries(state.openEndpoint);
  }

  // The catalogue, each type with its schema and example (folded).
  async function loadEventTypes() {
    const types = await attempt(() => api('GET', '/webhooks/event-types'));
    if (!types) return;
    fillTable($('#event-types'), types.map((t) => {
      const tr = document.createElement('tr');
      tr.dataset.eventType = t.name;
      const details = document.createElement('details');
      const summary = document.createElement('summary');
      summary.textContent = t.schema ? 'schema' : 'any object';
      const schema = document.createElement('pre');
      schema.className = 'schema';
      schema.textContent = t.schema ? JSON.stringify(t.schema, null, 2) : '';
      const example = document.createElement('pre');
      example.className = 'example';
      example.textContent = JSON.stringify(t.example, null, 2);
      details.append(summary, schema, example);
      const folded = document.createElement('td');
      folded.append(details);
      tr.append(cell(t.name, 'id'), cell(t.description), folded);
      return tr;
    }));
  }

  async function loadDeliveries(endpoint) {
    state.openEndpoint = endpoint;
    const page = await attempt(() => api('GET', `/webhooks/${endpoint.id}/deliveries?limit=25`));
    if (!page) return;
    $('#deliveries-panel').hidden = false;
    $('#deliveries-of').textContent = endpoint.url;
    $('#attempts').hidden = true;
    fillTable($('#deliveries'), page.items.map((d) => {
      const tr = document.createElement('tr');
      tr.dataset.messageId = d.message_id;
      const response = d.last_status ? `HTTP ${d.last_status}` : (d.last_error || '–');
      const actions = document.createElement('td');
      actions.append(button('Attempts', () => loadAttempts(endpoint, d)));
      tr.append(cell(when(d.created_at)), cell(d.event_type), cell(d.state, `state ${d.state}`), cell(d.attempts, 'num'), cell(response), actions);
      return tr;
    }));
  }

  async function loadAttempts(endpoint, delivery) {
    const attempts = await attempt(() => api('GET', `/webhooks/${endpoint.id}/deliveries/${delivery.message_id}/attempts`));
    if (!attempts) return;
    const panel = $('#attempts');
    panel.hidden = false;
    fillTable($('table', panel), attempts.map((a) => {
      const tr = document.createElement('tr');
      const response = document.createElement('td');
      const pre = document.createElement('pre');
      pre.textContent = a.response_excerpt || a.error_class || '';
      response.append(pre);
      tr.append(cell(a.attempt, 'num'), cell(when(a.attempted_at)), cell(a.response_status || a.error_class), cell(`${a.duration_ms} ms`, 'num'), response);
      return tr;
    }));
  }

  async function rotateSecret(endpoint) {
    if (!confirm(`Rotate the signing secret of ${endpoint.url}? The old one keeps signing for the grace period.`)) return;
    const rotated = await attempt(() => api('POST', `/webhooks/${endpoint.id}/rotate-secret`));
    if (!rotated) return;
    const notice = $('#secret-shown');
    notice.replaceChildren();
    const text = document.createElement('span');
    text.textContent = `New secret for ${endpoint.url} (shown once, copy it now): `;
    const code = document.createElement('code');
    code.id = 'new-secret';
    code.textContent = rotated.secret;
    notice.append(text, code);
    notice.hidden = false;
  }

  async function loadDeadLetters() {
    const page = await attempt(() => api('GET', '/webhooks/dead-letters?limit=50'));
    if (!page) return;
    $('#dead-letters-empty').hidden = page.items.length > 0;
    fillTable($('#dead-letters'), page.items.map((d) => {
      const tr = document.createElement('tr');
      tr.dataset.messageId = d.message_id;
      const outcome = cell('', 'outcome');
      const actions = document.createElement('td');
      actions.append(button('Replay', () => replay(d, tr, outcome), { 'data-replay': d.message_id }));
      tr.append(cell(when(d.created_at)), cell(d.event_type), cell(d.webhook_id, 'id'), cell(d.attempts, 'num'), cell(d.last_error || (d.last_status ? `HTTP ${d.last_status}` : '–')), actions, outcome);
      return tr;
    }));
  }

  // Replays a dead letter and follows it until it succeeds or fails again.
  async function replay(delivery, row, outcome) {
    const queued = await attempt(() => api('POST', `/webhooks/${delivery.webhook_id}/deliveries/${delivery.message_id}/retry`));
    if (!queued) return;
    $('button', row).disabled = true;
    outcome.textContent = 'pending';
    outcome.dataset.state = 'pending';
    for (let i = 0; i < 60; i += 1) {
      await new Promise((r) => setTimeout(r, 1000));
      const page = await attempt(() => api('GET', `/webhooks/${delivery.webhook_id}/deliveries?limit=100`));
      const now = page && page.items.find((d) => d.message_id === delivery.message_id);
      if (!now) continue;
      outcome.textContent = now.last_status ? `${now.state} (HTTP ${now.last_status})` : now.state;
      outcome.dataset.state = now.state;
      if (now.state !== 'pending') break;
    }
  }

  // ---- audit trail --------------------------------------------------------

  async function loadAudit(fresh) {
    if (fresh) {
      state.auditBefore = null;
      $('#chain-status').textContent = 'checking the chain…';
      attempt(async () => {
        const report = await api('GET', '/audit-logs/verify');
        const el = $('#chain-status');
        el.dataset.valid = String(report.valid);
        el.textContent = report.valid
          ? `chain intact: ${number(report.checked)} entries verified (#${report.first_seq}–#${report.head_seq})`
          : `chain BROKEN at #${report.first_broken.seq}: ${report.first_broken.reason}`;
      });
    }
    const form = new FormData($('#audit-filter'));
    const params = { limit: 50, before_seq: state.auditBefore };
    for (const [key, value] of form.entries()) {
      if (!value) continue;
      params[key] = key === 'from' || key === 'to' ? new Date(value).toISOString() : value;
    }
    const page = await attempt(() => api('GET', `/audit-logs?${query(params)}`));
    if (!page) return;
    const rows = page.items.map((e) => {
      const tr = document.createElement('tr');
      const actor = e.actor_id ? `${e.actor_type} ${e.actor_id}` : e.actor_type;
      const resource = e.resource_id ? `${e.resource_type} ${e.resource_id}` : e.resource_type;
      tr.append(cell(e.seq, 'num'), cell(when(e.occurred_at)), cell(actor), cell(e.action), cell(resource));
      return tr;
    });
    const body = $('#audit-entries tbody');
    if (fresh) body.replaceChildren(...rows); else body.append(...rows);
    state.auditBefore = page.next_before_seq;
    $('#audit-more').hidden = !page.next_before_seq;
  }

  // ---- wiring -------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', () => {
    $('#sign-in-form').addEventListener('submit', (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $('#token-input').value.trim());
      $('#token-input').value = '';
      clearError();
      signIn();
    });
    $('#sign-out').addEventListener('click', signOutEverywhere);
    $('#sign-in-provider').addEventListener('click', startProviderSignIn);
    $('#error-dismiss').addEventListener('click', clearError);
    document.querySelectorAll('#tabs button').forEach((b) => b.addEventListener('click', () => showTab(b.dataset.tab)));
    $('#range').addEventListener('change', loadAnalytics);
    $('#refresh').addEventListener('click', loadAnalytics);
    $('#metric').addEventListener('change', loadSeries);
    $('#interval').addEventListener('change', loadSeries);
    $('#webhooks-refresh').addEventListener('click', loadWebhooks);
    $('#audit-filter').addEventListener('submit', (event) => { event.preventDefault(); loadAudit(true); });
    $('#audit-more').addEventListener('click', () => loadAudit(false));
    window.addEventListener('online', () => { if (state.token && !state.ws) openLive(); });
    takeTokenFromFragment();
    offerProviderSignIn();
    finishProviderSignIn().then(() => {
      scheduleRefresh();
      signIn();
    });
  });
})();
