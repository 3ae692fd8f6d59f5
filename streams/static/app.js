/* 库存中心 dashboard: plain JavaScript, no framework, no build step, no CDN.
 *
 * Reads the worker's JSON views (/inventory, /orders) and follows /events/stream (SSE) for
 * live changes. Every text from the server goes into the page through textContent (never
 * innerHTML). DOM work is batched on a short timer, so a busy stream (thousands of events/s)
 * costs one repaint per tick, and the feed keeps only the newest FEED_CAP entries.
 */
'use strict';

(() => {
  const CODE = /^[A-Za-z0-9][A-Za-z0-9._:/#-]*$/; // schemas/base.py CODE_PATTERN
  const MAX_SKU_LEN = 64;
  const BATCH_MAX = 200; // GET /inventory?skus= accepts up to 200
  const FIELDS = ['availableQty', 'reservedQty', 'inTransitQty', 'totalQty', 'onHandQty',
    'presoldQty', 'outboundQty', 'damagedQty'];
  const FEED_CAP = 200; // entries kept in the live feed
  const THROUGHPUT_WINDOW_MS = 60_000;
  const SKU_WINDOW_MS = 10 * 60_000; // the SKU chart shows at most the last 10 minutes
  const SKU_MIN_SPAN_MS = 30_000; // ...and spans at least 30 s
  const SERIES_CAP = 600; // points per warehouse series
  const RECENT_CAP = 5000; // positions remembered from the stream (to merge with fetches)
  const FLUSH_MS = 200; // DOM batching interval
  const FETCH_TIMEOUT_MS = 8000;
  const STALE_STREAM_MS = 5000; // no message (stats come every second) for this long: check the server
  const HEALTH_RETRY_MS = 3000;
  const ALERT_ANNOUNCE_MS = 5000; // screen readers hear at most one alert summary per 5 s
  const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

  const STATUS_ZH = {
    PENDING: '待处理', RESERVED: '已预占', REJECTED: '已拒绝', EXPIRED: '已过期', CANCELLED: '已取消',
    OUTBOUND_REQUESTED: '已下发出库', PARTIALLY_SHIPPED: '部分发货', SHIPPED: '已发货', DELIVERED: '已签收',
    DELIVERY_FAILED: '配送失败', RETURN_REQUESTED: '退货申请', PARTIALLY_RETURNED: '部分退货', RETURNED: '已退货',
  };
  const STATUS_TONE = {
    RESERVED: 'ok', OUTBOUND_REQUESTED: 'ok', PARTIALLY_SHIPPED: 'ok', SHIPPED: 'ok', DELIVERED: 'ok',
    PENDING: 'warn', DELIVERY_FAILED: 'warn', RETURN_REQUESTED: 'warn', PARTIALLY_RETURNED: 'warn', RETURNED: 'warn',
    REJECTED: 'bad', EXPIRED: 'bad', CANCELLED: 'bad',
  };
  const LINE_STATE_ZH = { REQUESTED: '请求中', RESERVED: '已预占', REJECTED: '已拒绝', RELEASED: '已释放', UNRESERVED: '未预占' };
  const ALERT_ZH = {
    LOW_STOCK: '低库存', OUT_OF_STOCK: '缺货', SHORTAGE: '短缺', RECONCILIATION_DRIFT: '盘点差异', ANOMALY: '异常', DUPLICATE_DOCUMENT: '重复单据',
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'title' || k === 'scope' || k === 'type' || k === 'datetime') node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const svgEl = (tag, attrs = {}, text) => {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const nf = new Intl.NumberFormat('zh-CN');
  const fmtNum = (n) => (typeof n === 'number' ? nf.format(n) : '–');
  const pad = (n) => String(n).padStart(2, '0');
  const fmtTime = (ms) => { const d = new Date(ms); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };
  const fmtDateTime = (iso) => {
    if (!iso) return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(d.getTime())}`;
  };
  const fmtShort = (iso) => {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${fmtTime(d.getTime())}`;
  };
  const enc = encodeURIComponent;
  const posKey = (sku, wh) => `${sku}|${wh}`;

  // ------------------------------------------------------------------ state
  const state = {
    skus: [], // SKUs on display, in the order asked
    watched: new Set(), // every SKU asked for (a missing one appears when its first event arrives)
    missing: [],
    positions: new Map(), // sku|wh -> position (REST shape)
    series: new Map(), // sku|wh -> [{t, v}] availableQty over time
    recent: new Map(), // sku|wh -> last position seen on the stream (any SKU)
    skuSeq: 0,
    orderNo: null,
    orderSeq: 0,
    orderRefresh: null,
    throughput: [], // {t, eps}
    pendingFeed: [],
    dirtyRows: new Set(),
    tableRebuild: false,
    flushTimer: null,
    es: null,
    streamState: 'connecting',
    lastMessageAt: 0,
    serverDown: false,
    healthTimer: null,
    reconnectTimer: null,
    alertsUnannounced: 0,
    lastAlert: null,
    announceTimer: null,
    deadShown: -1, // the dead-letter count the list was last fetched for
    deadFetching: false,
  };

  // ------------------------------------------------------------------ HTTP
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function getJSON(path) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store', signal: ctrl.signal });
    } catch (err) {
      serverUnreachable();
      throw new ApiError(0, '无法连接服务器 · server unreachable');
    } finally {
      clearTimeout(timer);
    }
    serverReachable();
    if (res.status === 401) sessionEnded();
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) throw new ApiError(res.status, (body && body.error) || `HTTP ${res.status}`);
    return body;
  }

  // With a read token configured (streams/web_access.py) the page lives on a session cookie:
  // once it expires every view answers 401, and the dashboard URL shows the login form again.
  function sessionEnded() { window.location.assign('/dashboard'); }

  // ------------------------------------------------------------------ banner and connection
  function showBanner(text) {
    const banner = $('banner');
    banner.textContent = text;
    banner.hidden = false;
  }
  function hideBanner() { $('banner').hidden = true; $('banner').textContent = ''; }

  function setStream(stateName, text) {
    state.streamState = stateName;
    $('conn-status').dataset.state = stateName;
    $('conn-text').textContent = text;
  }

  function serverUnreachable() {
    if (!state.serverDown) {
      state.serverDown = true;
      document.body.classList.add('server-down');
    }
    showBanner('⚠ 无法连接服务器，正在重试… · The server is unreachable; retrying. Figures on this page may be out of date.');
    scheduleHealthCheck();
  }

  function serverReachable() {
    if (!state.serverDown) return;
    state.serverDown = false;
    document.body.classList.remove('server-down');
    hideBanner();
    // Catch up with what happened while we were away.
    if (!state.es || state.es.readyState === EventSource.CLOSED) connectStream();
    refreshDisplayed();
  }

  function scheduleHealthCheck(delay = HEALTH_RETRY_MS) {
    if (state.healthTimer) return;
    state.healthTimer = setTimeout(async () => {
      state.healthTimer = null;
      await checkHealth();
    }, delay);
  }

  async function checkHealth() {
    try {
      await getJSON('/health');
      return true;
    } catch (_) {
      return false; // getJSON already raised the banner and scheduled a retry
    }
  }

  // ------------------------------------------------------------------ live stream (SSE)
  function connectStream() {
    if (state.reconnectTimer) { clearTimeout(state.reconnectTimer); state.reconnectTimer = null; }
    if (state.es) state.es.close();
    setStream('connecting', '正在连接实时流 · Connecting…');
    const es = new EventSource('/events/stream');
    state.es = es;
    const wasInterrupted = state.lastMessageAt > 0;
    let opened = false;
    es.addEventListener('open', () => {
      state.lastMessageAt = Date.now();
      setStream('open', '实时流已连接 · Live');
      const wasDown = state.serverDown;
      serverReachable(); // (re-reads what is on display when the server was down)
      // Events published while disconnected are not replayed: re-read what is on display.
      if ((opened || wasInterrupted) && !wasDown) refreshDisplayed();
      opened = true;
    });
    const handle = (fn) => (event) => {
      state.lastMessageAt = Date.now();
      let data;
      try { data = JSON.parse(event.data); } catch (_) { return; }
      fn(data);
    };
    es.addEventListener('inventory', handle(onInventory));
    es.addEventListener('alert', handle((d) => queueFeed('alert', d)));
    es.addEventListener('order', handle(onOrderEvent));
    es.addEventListener('stats', handle(onStats));
    es.addEventListener('error', () => {
      if (es !== state.es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The server answered but not with a stream (e.g. 401/404/503): retry ourselves, unless
        // the session ended (EventSource does not tell the status: ask a view that needs it).
        setStream('closed', '实时流不可用，稍后重试 · Live stream unavailable; retrying');
        fetch('/openapi.json', { cache: 'no-store' }).then((r) => { if (r.status === 401) sessionEnded(); }, () => {});
        state.reconnectTimer = setTimeout(connectStream, HEALTH_RETRY_MS);
      } else {
        setStream('reconnecting', '实时流中断，重连中 · Reconnecting…');
      }
      checkHealth();
    });
  }

  // A half-open connection sends nothing: stats arrive every second, so silence means trouble.
  setInterval(() => {
    if (state.streamState === 'open' && Date.now() - state.lastMessageAt > STALE_STREAM_MS) {
      setStream('reconnecting', '实时流无响应，重连中 · Stream silent; reconnecting…');
      checkHealth().then((ok) => { if (ok) connectStream(); });
    }
  }, 1000);

  // ------------------------------------------------------------------ inventory events
  function onInventory(e) {
    if (!e || !e.sku || !e.warehouseCode) return;
    const key = posKey(e.sku, e.warehouseCode);
    const previous = state.recent.get(key) || state.positions.get(key);
    const position = {
      sku: e.sku, warehouseCode: e.warehouseCode, version: e.version,
      updatedAt: e.updatedAt || e.occurredAt,
    };
    for (const f of FIELDS) position[f] = e[f];
    const stale = previous && typeof previous.version === 'number' && typeof e.version === 'number' && e.version <= previous.version;
    if (!stale) {
      state.recent.delete(key);
      state.recent.set(key, position);
      if (state.recent.size > RECENT_CAP) state.recent.delete(state.recent.keys().next().value);
    }
    queueFeed('inventory', e, previous && !stale ? e.availableQty - previous.availableQty : null);
    if (stale) return;
    if (state.skus.includes(e.sku)) {
      if (!state.positions.has(key)) state.tableRebuild = true;
      state.positions.set(key, position);
      state.dirtyRows.add(key);
      addPoint(key, Date.now(), e.availableQty);
      scheduleFlush();
    } else if (state.watched.has(e.sku)) {
      // A SKU that was "not found" when searched has just appeared.
      state.skus.push(e.sku);
      state.missing = state.missing.filter((s) => s !== e.sku);
      state.positions.set(key, position);
      addPoint(key, Date.now(), e.availableQty);
      state.tableRebuild = true;
      scheduleFlush();
    }
  }

  function addPoint(key, t, v) {
    let points = state.series.get(key);
    if (!points) { points = []; state.series.set(key, points); }
    points.push({ t, v });
    if (points.length > SERIES_CAP) points.splice(0, points.length - SERIES_CAP);
  }

  // ------------------------------------------------------------------ SKU search
  function parseSkus(raw) {
    const out = [];
    for (const s of raw.split(/[\s,，、;；]+/)) {
      const sku = s.trim();
      if (sku && !out.includes(sku)) out.push(sku);
    }
    return out;
  }

  function setMessage(id, tone, text) {
    const node = $(id);
    node.textContent = text;
    node.dataset.tone = tone;
  }

  async function searchSkus(raw) {
    const skus = parseSkus(raw);
    if (skus.length === 0) { setMessage('sku-message', 'error', '请输入 SKU · Enter a SKU'); return; }
    const bad = skus.filter((s) => s.length > MAX_SKU_LEN || !CODE.test(s));
    if (bad.length) {
      setMessage('sku-message', 'error', `SKU 格式不正确 · malformed SKU: ${bad.join(', ')}`);
      return;
    }
    if (skus.length > BATCH_MAX) {
      setMessage('sku-message', 'error', `一次最多 ${BATCH_MAX} 个 SKU · at most ${BATCH_MAX} SKUs at once`);
      return;
    }
    const seq = ++state.skuSeq;
    setMessage('sku-message', 'busy', '查询中… · Loading…');
    $('sku-table').setAttribute('aria-busy', 'true');
    let items = {};
    let missing = [];
    try {
      if (skus.length === 1) {
        try {
          items[skus[0]] = await getJSON(`/inventory/${enc(skus[0])}`);
        } catch (err) {
          if (err.status !== 404) throw err;
          missing = [skus[0]];
        }
      } else {
        const body = await getJSON(`/inventory?skus=${skus.map(enc).join(',')}`);
        items = (body && body.items) || {};
        missing = (body && body.missing) || skus.filter((s) => !(s in items));
      }
    } catch (err) {
      if (seq !== state.skuSeq) return;
      $('sku-table').removeAttribute('aria-busy');
      setMessage('sku-message', 'error', err.status === 0 ? err.message : `查询失败 · request failed (${err.status}): ${err.message}`);
      return;
    }
    if (seq !== state.skuSeq) return; // a newer search won
    $('sku-table').removeAttribute('aria-busy');
    showSkus(skus, items, missing, true);
    updateQuery();
  }

  /** Put the fetched SKUs on display; `fresh` starts the chart series over. */
  function showSkus(asked, items, missing, fresh) {
    const now = Date.now();
    if (fresh) { state.series.clear(); state.positions.clear(); }
    state.watched = new Set(asked);
    state.skus = asked.filter((s) => items[s]);
    state.missing = missing.slice();
    for (const sku of state.skus) {
      for (const p of items[sku].warehouses || []) {
        const key = posKey(sku, p.warehouseCode);
        // The stream may have delivered a newer version while the request was in flight.
        const seen = state.recent.get(key);
        const best = seen && seen.version > p.version ? seen : p;
        const before = state.positions.get(key);
        state.positions.set(key, { ...best, sku });
        if (fresh || !before || before.availableQty !== best.availableQty) addPoint(key, now, best.availableQty);
      }
    }
    state.tableRebuild = true;
    flush();
  }

  /** Re-read what is on display (after a reconnect: the stream does not replay). */
  async function refreshDisplayed() {
    if (state.watched.size) {
      const asked = [...state.watched];
      const seq = state.skuSeq; // a search started meanwhile wins
      try {
        let items = {};
        let missing = [];
        if (asked.length === 1) {
          try { items[asked[0]] = await getJSON(`/inventory/${enc(asked[0])}`); } catch (err) {
            if (err.status !== 404) throw err;
            missing = asked.slice();
          }
        } else {
          const body = await getJSON(`/inventory?skus=${asked.map(enc).join(',')}`);
          items = body.items || {};
          missing = body.missing || [];
        }
        if (seq === state.skuSeq) showSkus(asked, items, missing, false);
      } catch (_) { /* the banner says why */ }
    }
    if (state.orderNo) loadOrder(state.orderNo, { quiet: true });
  }

  function skuMessage() {
    const found = state.skus.length;
    if (state.missing.length && !found) {
      setMessage('sku-message', 'error', `未找到 SKU ${state.missing.join(', ')} · not found`);
    } else if (state.missing.length) {
      setMessage('sku-message', 'warn', `${found} 个 SKU 已找到；未找到 ${state.missing.join(', ')} · not found`);
    } else if (found) {
      const wh = [...state.positions.keys()].length;
      setMessage('sku-message', 'ok', `${found} 个 SKU，${wh} 个仓库位置 · ${found} SKU(s), ${wh} position(s). 实时更新 live updates on.`);
    }
  }

  function networkOf(sku) {
    const totals = Object.fromEntries(FIELDS.map((f) => [f, 0]));
    for (const [key, p] of state.positions) {
      if (!key.startsWith(`${sku}|`) || p.sku !== sku) continue;
      for (const f of FIELDS) totals[f] += p[f] || 0;
    }
    return totals;
  }

  function positionsOf(sku) {
    return [...state.positions.values()].filter((p) => p.sku === sku)
      .sort((a, b) => a.warehouseCode.localeCompare(b.warehouseCode));
  }

  function fillCells(tr, values, flash) {
    for (const f of [...FIELDS, 'version']) {
      const td = tr.querySelector(`td[data-field="${f}"]`);
      if (!td) continue;
      const v = values[f];
      const old = td.dataset.value === undefined ? null : Number(td.dataset.value);
      td.dataset.value = String(v);
      td.textContent = fmtNum(v);
      if (flash && old !== null && old !== v && f !== 'version') {
        td.classList.remove('up', 'down');
        void td.offsetWidth; // restart the animation
        td.classList.add(v > old ? 'up' : 'down');
      }
    }
    const upd = tr.querySelector('td[data-field="updatedAt"]');
    if (upd) {
      upd.textContent = values.updatedAt ? fmtShort(values.updatedAt) : '';
      if (values.updatedAt) upd.title = fmtDateTime(values.updatedAt); else upd.removeAttribute('title');
    }
  }

  function buildTable() {
    const body = $('sku-rows');
    body.replaceChildren();
    for (const sku of state.skus) {
      const positions = positionsOf(sku);
      positions.forEach((p, i) => {
        const tr = el('tr', { 'data-sku': sku, 'data-wh': p.warehouseCode },
          i === 0 ? el('th', { scope: 'rowgroup', rowSpan: positions.length + 1, class: 'sku-cell', text: sku }) : null,
          el('th', { scope: 'row', class: 'wh', text: p.warehouseCode }),
          ...FIELDS.map((f) => el('td', { class: `num${f === 'availableQty' ? ' key-figure' : ''}`, 'data-field': f })),
          el('td', { class: 'num', 'data-field': 'version' }),
          el('td', { class: 'time', 'data-field': 'updatedAt' }));
        fillCells(tr, p, false);
        body.append(tr);
      });
      const net = el('tr', { class: 'network', 'data-sku': sku, 'data-network': 'true' },
        positions.length ? null : el('th', { scope: 'row', class: 'sku-cell', text: sku }),
        el('th', { scope: 'row', class: 'wh', text: '全网合计 Network' }),
        ...FIELDS.map((f) => el('td', { class: `num${f === 'availableQty' ? ' key-figure' : ''}`, 'data-field': f })),
        el('td', { class: 'num', 'data-field': 'version' }),
        el('td', { class: 'time', 'data-field': 'updatedAt' }));
      fillCells(net, networkOf(sku), false);
      body.append(net);
    }
    $('sku-table').hidden = state.skus.length === 0;
    $('sku-table').classList.toggle('single', state.skus.length === 1); // one SKU: the search box names it
  }

  function updateRows() {
    const touched = new Set();
    for (const key of state.dirtyRows) {
      const p = state.positions.get(key);
      if (!p) continue;
      const tr = $('sku-rows').querySelector(`tr[data-sku="${CSS.escape(p.sku)}"][data-wh="${CSS.escape(p.warehouseCode)}"]`);
      if (!tr) { state.tableRebuild = true; return; }
      fillCells(tr, p, true);
      touched.add(p.sku);
    }
    for (const sku of touched) {
      const net = $('sku-rows').querySelector(`tr.network[data-sku="${CSS.escape(sku)}"]`);
      if (net) fillCells(net, networkOf(sku), true);
    }
  }

  // ------------------------------------------------------------------ orders
  async function loadOrder(orderNo, { quiet = false } = {}) {
    const no = orderNo.trim();
    if (!no) { setMessage('order-message', 'error', '请输入订单号 · Enter an order number'); return; }
    if (no.length > 64 || !CODE.test(no)) {
      setMessage('order-message', 'error', `订单号格式不正确 · malformed order number: ${no}`);
      return;
    }
    const seq = ++state.orderSeq;
    state.orderNo = no;
    if (!quiet) setMessage('order-message', 'busy', '查询中… · Loading…');
    try {
      const order = await getJSON(`/orders/${enc(no)}`);
      if (seq !== state.orderSeq) return;
      renderOrder(order);
      setMessage('order-message', 'ok', `订单 ${order.orderNo} · 实时更新 live updates on`);
    } catch (err) {
      if (seq !== state.orderSeq) return;
      if (err.status === 404) {
        $('order-detail').hidden = true;
        setMessage('order-message', 'error', `未找到订单 ${no} · not found`);
      } else if (!quiet || err.status !== 0) {
        setMessage('order-message', 'error', err.status === 0 ? err.message : `查询失败 · request failed (${err.status}): ${err.message}`);
      }
    }
    updateQuery();
  }

  function renderOrder(o) {
    const status = $('order-status');
    status.textContent = `${STATUS_ZH[o.status] || ''} ${o.status}`.trim();
    status.dataset.status = o.status;
    status.dataset.tone = STATUS_TONE[o.status] || 'warn';
    $('order-type').textContent = o.known === false
      ? `${o.orderType || ''} · 仅见物流事件 known from shipments only`.replace(/^ · /, '')
      : (o.orderType || '–');
    $('order-paid').textContent = o.paid ? '是 yes' : '否 no';
    $('order-version').textContent = fmtNum(o.version);
    $('order-expires').textContent = o.reservationExpiresAt ? fmtDateTime(o.reservationExpiresAt) : '–';
    const rows = (o.lines || []).map((l) => el('tr', { 'data-sku': l.sku },
      el('th', { scope: 'row', class: 'wh' }, el('button', { type: 'button', class: 'link', 'data-goto-sku': l.sku, text: l.sku, title: `查询库存 show stock of ${l.sku}` })),
      el('td', { class: 'num', text: fmtNum(l.quantity) }),
      el('td', { text: l.warehouseCode || '–' }),
      el('td', { 'data-field': 'reservationState', text: `${LINE_STATE_ZH[l.reservationState] || ''} ${l.reservationState || ''}`.trim() }),
      ...['reservedQty', 'presoldQty', 'shortQty', 'shippedQty', 'deliveredQty', 'returnedQty']
        .map((f) => el('td', { class: 'num', 'data-field': f, text: fmtNum(l[f]) }))));
    $('order-line-rows').replaceChildren(...rows);
    const timeline = (o.timeline || []).map((t) => el('li', {},
      el('time', { datetime: t.at, text: fmtDateTime(t.at) }), ' ',
      el('span', { class: 'what', text: t.what }),
      t.causeEventId ? el('code', { class: 'cause', title: '触发事件 cause event', text: t.causeEventId }) : null));
    $('order-timeline').replaceChildren(...timeline);
    $('order-detail').hidden = false;
  }

  function onOrderEvent(e) {
    queueFeed('order', e);
    if (state.orderNo && e && e.orderNo === state.orderNo) {
      // The event carries the status but not the timeline: re-read the order, once per burst.
      clearTimeout(state.orderRefresh);
      state.orderRefresh = setTimeout(() => loadOrder(state.orderNo, { quiet: true }), 250);
    }
  }

  // ------------------------------------------------------------------ stats and throughput
  function onStats(s) {
    const now = Date.now();
    const eps = Number(s.eventsPerSecond) || 0;
    state.throughput.push({ t: now, v: eps });
    while (state.throughput.length && state.throughput[0].t < now - THROUGHPUT_WINDOW_MS - 2000) state.throughput.shift();
    $('stat-eps').textContent = eps.toFixed(1);
    const topics = s.eventsIn || {};
    const total = Object.values(topics).reduce((a, b) => a + (Number(b) || 0), 0);
    $('stat-in').textContent = fmtNum(total);
    $('stat-in').title = Object.entries(topics).map(([t, n]) => `${t}: ${n}`).join('\n');
    const dead = Number(s.deadLetters) || 0;
    $('stat-dead').textContent = fmtNum(dead);
    $('stat-dead').dataset.tone = dead > 0 ? 'bad' : 'ok';
    drawThroughput();
    showLag(Array.isArray(s.lag) ? s.lag : [], Number(s.lagTotal) || 0);
    if (dead !== state.deadShown) loadDeadLetters(dead);
  }

  // ------------------------------------------------------------------ pipeline health
  function showLag(partitions, total) {
    $('lag-total').textContent = fmtNum(total);
    $('lag-total').dataset.tone = total > 0 ? 'bad' : 'ok';
    // the most behind first, then by topic and partition
    const rows = [...partitions].sort((a, b) => (b.lag - a.lag) || String(a.topic).localeCompare(String(b.topic)) || (a.partition - b.partition));
    $('lag-rows').replaceChildren(...rows.map((p) => el('tr', { 'data-topic': p.topic, 'data-partition': String(p.partition) },
      el('td', { text: p.topic }),
      el('td', { class: 'num', text: String(p.partition) }),
      el('td', { class: 'num', 'data-field': 'lag', 'data-value': String(p.lag), 'data-tone': p.lag > 0 ? 'bad' : 'ok', text: fmtNum(p.lag) }))));
  }

  async function loadDeadLetters(count) {
    if (state.deadFetching) return;
    state.deadFetching = true;
    try {
      const body = await getJSON('/dead-letters/latest?limit=20');
      state.deadShown = count;
      showDeadLetters(body.deadLetters || []);
    } catch (_) {
      /* shown again on the next stats tick (the count still differs) */
    } finally {
      state.deadFetching = false;
    }
  }

  function showDeadLetters(letters) {
    $('dead-empty').hidden = letters.length > 0;
    $('dead-list').replaceChildren(...letters.map((d) => el('li', {
      class: 'dead-item', 'data-error-type': d.errorType, 'data-topic': d.sourceTopic,
      'data-partition': String(d.sourcePartition), 'data-offset': String(d.sourceOffset),
    },
    el('time', { datetime: d.failedAt, text: fmtDateTime(d.failedAt) }),
    el('span', { class: 'badge', text: d.errorType }),
    el('span', { class: 'where', text: `${d.sourceTopic}[${d.sourcePartition}]@${d.sourceOffset}${d.key ? ` · key ${d.key}` : ''}` }),
    el('span', { class: 'reason', title: d.error, text: d.error.length > 240 ? `${d.error.slice(0, 240)}…` : d.error }))));
  }

  // ------------------------------------------------------------------ feed
  function queueFeed(kind, data, delta = null) {
    state.pendingFeed.push({ kind, data, delta, at: Date.now() });
    if (state.pendingFeed.length > FEED_CAP * 2) state.pendingFeed.splice(0, state.pendingFeed.length - FEED_CAP);
    scheduleFlush();
  }

  function skuButton(sku) {
    return el('button', { type: 'button', class: 'link', 'data-goto-sku': sku, text: sku, title: `查询库存 show stock of ${sku}` });
  }
  function orderButton(no) {
    return el('button', { type: 'button', class: 'link', 'data-goto-order': no, text: no, title: `查询订单 show order ${no}` });
  }

  function feedItem({ kind, data: d, delta, at }) {
    const when = el('time', { datetime: new Date(at).toISOString(), text: fmtTime(at), title: d.occurredAt ? `发生于 occurred at ${fmtDateTime(d.occurredAt)}` : undefined });
    let li;
    if (kind === 'inventory') {
      const change = delta === null || delta === 0 ? null
        : el('span', { class: delta > 0 ? 'delta up' : 'delta down', text: ` (${delta > 0 ? '+' : '−'}${Math.abs(delta)})` });
      li = el('li', { class: 'feed-item inventory', 'data-kind': 'inventory', 'data-sku': d.sku },
        when, el('span', { class: 'badge inventory', text: '库存' }),
        el('span', { class: 'what' }, skuButton(d.sku), ' @ ', d.warehouseCode, ' · 可用 ',
          el('strong', { 'data-field': 'availableQty', text: fmtNum(d.availableQty) }), change,
          ` · 预占 ${fmtNum(d.reservedQty)} · 在途 ${fmtNum(d.inTransitQty)}`),
        el('span', { class: 'cause', text: `${d.causeEventType || ''} v${d.version ?? '?'}` }));
    } else if (kind === 'alert') {
      li = el('li', { class: 'feed-item alert', 'data-kind': 'alert', 'data-sku': d.sku || '' },
        when, el('span', { class: `badge alert ${String(d.alertType || '').toLowerCase()}`, text: ALERT_ZH[d.alertType] || d.alertType || '告警' }),
        el('span', { class: 'what' },
          d.sku ? skuButton(d.sku) : null, d.warehouseCode ? ` @ ${d.warehouseCode}` : '',
          d.orderNo ? ' · 订单 ' : '', d.orderNo ? orderButton(d.orderNo) : null,
          d.quantity ? ` · ${fmtNum(d.quantity)} 件` : '', d.message ? ` · ${d.message}` : ''),
        el('span', { class: 'cause', text: d.alertType || '' }));
    } else {
      li = el('li', { class: 'feed-item order', 'data-kind': 'order', 'data-order': d.orderNo || '' },
        when, el('span', { class: 'badge order', text: '订单' }),
        el('span', { class: 'what' }, orderButton(d.orderNo || '?'), ' ',
          d.previousStatus ? `${d.previousStatus} → ` : '', el('strong', { text: d.status || '?' }),
          STATUS_ZH[d.status] ? ` ${STATUS_ZH[d.status]}` : '', d.reason ? ` · ${d.reason}` : ''),
        el('span', { class: 'cause', text: `${d.causeEventType || ''} v${d.version ?? '?'}` }));
    }
    applyFeedFilter(li);
    return li;
  }

  function applyFeedFilter(li) {
    const kind = li.dataset.kind;
    let show = $(`show-${kind}`).checked;
    if (show && $('feed-only-sku').checked && kind !== 'order') show = state.skus.includes(li.dataset.sku);
    li.hidden = !show;
  }

  function flushFeed() {
    if (!state.pendingFeed.length) return;
    const batch = state.pendingFeed.splice(0, state.pendingFeed.length).slice(-FEED_CAP);
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.append(feedItem(batch[i])); // newest first
    const feed = $('feed');
    feed.prepend(frag);
    while (feed.childElementCount > FEED_CAP) feed.lastElementChild.remove();
    $('feed-empty').hidden = true;
    // The feed itself is not a live region (it can move hundreds of times a second); alerts
    // are announced to screen readers, at most one summary every few seconds.
    const alerts = batch.filter((item) => item.kind === 'alert');
    if (alerts.length) {
      state.alertsUnannounced += alerts.length;
      state.lastAlert = alerts[alerts.length - 1].data;
      if (!state.announceTimer) state.announceTimer = setTimeout(announceAlerts, 0);
    }
  }

  function announceAlerts() {
    const n = state.alertsUnannounced;
    const a = state.lastAlert || {};
    state.alertsUnannounced = 0;
    $('alert-announcer').textContent = `${n} 条新告警 ${n} new alert(s): ${ALERT_ZH[a.alertType] || a.alertType || ''} ${a.sku || a.orderNo || ''} ${a.message || ''}`;
    state.announceTimer = setTimeout(() => {
      state.announceTimer = null;
      if (state.alertsUnannounced) announceAlerts();
    }, ALERT_ANNOUNCE_MS);
  }

  // ------------------------------------------------------------------ batching
  function scheduleFlush() {
    if (state.flushTimer) return;
    state.flushTimer = setTimeout(flush, FLUSH_MS);
  }

  function flush() {
    clearTimeout(state.flushTimer);
    state.flushTimer = null;
    if (state.tableRebuild) {
      state.tableRebuild = false;
      state.dirtyRows.clear();
      buildTable();
      skuMessage();
      drawSkuChart();
    } else if (state.dirtyRows.size) {
      updateRows();
      state.dirtyRows.clear();
      if (state.tableRebuild) { state.tableRebuild = false; buildTable(); skuMessage(); }
      drawSkuChart();
    }
    flushFeed();
  }

  // ------------------------------------------------------------------ charts (inline SVG)
  function niceStep(range, ticks) {
    const raw = range / Math.max(1, ticks);
    const mag = 10 ** Math.floor(Math.log10(raw || 1));
    const norm = raw / mag;
    return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  }

  /**
   * Draw time series into an <svg>: series = [{label, color, points: [{t, v}], step}].
   * The viewBox follows the element's size, so text is never stretched.
   */
  function drawChart(svg, { series, tMin, tMax, now = tMax, integer, zeroBased = true, emptyText, description }) {
    const width = Math.max(240, Math.round(svg.clientWidth || svg.parentNode.clientWidth || 640));
    const height = Math.max(100, Math.round(svg.clientHeight || 160));
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    const m = { l: 48, r: 12, t: 10, b: 22 };
    const children = [svgEl('desc', { id: `${svg.id}-desc` }, description || emptyText)];
    const values = series.flatMap((s) => s.points.filter((p) => p.t >= tMin).map((p) => p.v));
    // the value in force at tMin (a step series starts before the window)
    for (const s of series) {
      const before = s.points.filter((p) => p.t < tMin).pop();
      if (before) values.push(before.v);
    }
    if (!values.length) {
      children.push(svgEl('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'chart-empty' }, emptyText));
      svg.replaceChildren(...children);
      return;
    }
    let yMax = Math.max(...values);
    let yMin = Math.min(0, ...values);
    // Large stock levels that move by a few units: a zero-based axis would flatten every
    // change, so the axis then follows the data (the tick labels say where it starts).
    const dataMin = Math.min(...values);
    if (!zeroBased && dataMin > 0 && yMax - dataMin < 0.2 * yMax) yMin = dataMin - Math.max(1, (yMax - dataMin) * 0.25);
    if (yMax === yMin) yMax = yMin + (integer ? 5 : 1);
    const step = integer ? Math.max(1, niceStep(yMax - yMin, 4)) : niceStep(yMax - yMin, 4);
    yMax = Math.ceil(yMax / step) * step;
    yMin = Math.floor(yMin / step) * step;
    const label = (v) => (integer || step >= 1 ? nf.format(Math.round(v)) : v.toFixed(1));
    m.l = Math.max(m.l, 14 + 7 * Math.max(label(yMin).length, label(yMax).length)); // room for the widest tick label
    const w = width - m.l - m.r;
    const h = height - m.t - m.b;
    const x = (t) => m.l + ((t - tMin) / Math.max(1, tMax - tMin)) * w;
    const y = (v) => m.t + h - ((v - yMin) / (yMax - yMin)) * h;
    const grid = svgEl('g', { class: 'grid' });
    for (let v = yMin; v <= yMax + step / 2; v += step) {
      grid.append(svgEl('line', { x1: m.l, x2: m.l + w, y1: y(v), y2: y(v) }));
      grid.append(svgEl('text', { x: m.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, label(v)));
    }
    const span = tMax - tMin;
    const tStep = [5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3].find((s) => span / s <= 6) || 600e3;
    for (let t = Math.ceil(tMin / tStep) * tStep; t <= tMax; t += tStep) {
      grid.append(svgEl('text', { x: x(t), y: height - 6, 'text-anchor': 'middle' }, fmtTime(t)));
    }
    grid.append(svgEl('line', { class: 'axis', x1: m.l, x2: m.l + w, y1: y(yMin), y2: y(yMin) }));
    children.push(grid);
    for (const s of series) {
      const pts = s.points.filter((p) => p.t >= tMin);
      const before = s.points.filter((p) => p.t < tMin).pop();
      if (before) pts.unshift({ t: tMin, v: before.v });
      if (!pts.length) continue;
      let d = '';
      pts.forEach((p, i) => {
        if (i === 0) d += `M${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
        else if (s.step) d += `H${x(p.t).toFixed(1)}V${y(p.v).toFixed(1)}`;
        else d += `L${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      });
      const last = pts[pts.length - 1];
      const end = Math.min(now, tMax); // a step series holds its last value until now
      if (s.step) d += `H${x(end).toFixed(1)}`;
      if (s.fill) {
        const area = `${d}L${x(s.step ? end : last.t).toFixed(1)},${y(yMin).toFixed(1)}L${x(pts[0].t).toFixed(1)},${y(yMin).toFixed(1)}Z`;
        children.push(svgEl('path', { d: area, fill: s.color, 'fill-opacity': 0.15, stroke: 'none' }));
      }
      const path = svgEl('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round', 'data-series': s.label });
      path.append(svgEl('title', {}, s.label));
      children.push(path);
      children.push(svgEl('circle', { cx: x(s.step ? end : last.t), cy: y(last.v), r: 3, fill: s.color }));
    }
    svg.replaceChildren(...children);
  }

  function colorFor(index) { return PALETTE[index % PALETTE.length]; }

  function drawSkuChart() {
    const svg = $('sku-chart');
    const now = Date.now();
    const keys = state.skus.flatMap((sku) => positionsOf(sku).map((p) => posKey(sku, p.warehouseCode)));
    const several = state.skus.length > 1;
    let tMin = now;
    for (const k of keys) { const pts = state.series.get(k); if (pts && pts.length) tMin = Math.min(tMin, pts[0].t); }
    // From the search on (the page knows nothing earlier), growing to the right until the
    // first 30 s are filled, then sliding, at most the last 10 minutes.
    tMin = Math.max(now - SKU_WINDOW_MS, tMin - 1000);
    const tMax = Math.max(now, tMin + SKU_MIN_SPAN_MS);
    const series = keys.map((k, i) => {
      const p = state.positions.get(k);
      return { label: several ? `${p.sku} ${p.warehouseCode}` : p.warehouseCode, color: colorFor(i), step: true, points: state.series.get(k) || [] };
    });
    const description = series.length
      ? `可用量 availableQty: ${series.map((s) => `${s.label} ${s.points.length ? s.points[s.points.length - 1].v : '–'}`).join(', ')}`
      : '尚无数据 No data yet';
    drawChart(svg, { series, tMin, tMax, now, integer: true, zeroBased: false, emptyText: '查询 SKU 后显示 · search a SKU to plot its availableQty', description });
    $('sku-chart-legend').replaceChildren(...series.map((s) => el('span', { class: 'legend-item' },
      el('span', { class: 'swatch', style: `background:${s.color}`, 'aria-hidden': 'true' }), s.label)));
  }

  function drawThroughput() {
    const now = Date.now();
    const pts = state.throughput;
    const last = pts.length ? pts[pts.length - 1].v : null;
    drawChart($('throughput-chart'), {
      series: [{ label: 'events/s', color: '#1f77b4', fill: true, points: pts }],
      tMin: now - THROUGHPUT_WINDOW_MS, tMax: now, integer: false,
      emptyText: '等待 stats 事件 · waiting for stats',
      description: last === null ? '尚无数据 No data yet' : `最近 60 秒吞吐量，当前 ${last.toFixed(1)} events/s`,
    });
  }

  // keep the SKU chart's time axis moving even when nothing changes
  setInterval(() => { if (state.skus.length) drawSkuChart(); }, 1000);
  window.addEventListener('resize', () => { drawSkuChart(); drawThroughput(); });

  // ------------------------------------------------------------------ URL state and wiring
  function updateQuery() {
    const params = new URLSearchParams();
    if (state.watched.size) params.set('sku', [...state.watched].join(','));
    if (state.orderNo) params.set('order', state.orderNo);
    const qs = params.toString();
    history.replaceState(null, '', qs ? `?${qs}` : location.pathname);
  }

  function gotoSku(sku) {
    $('sku-input').value = sku;
    searchSkus(sku);
  }
  function gotoOrder(no) {
    $('order-input').value = no;
    loadOrder(no);
  }

  document.addEventListener('click', (ev) => {
    const target = ev.target.closest('[data-goto-sku],[data-goto-order]');
    if (!target) return;
    if (target.dataset.gotoSku) gotoSku(target.dataset.gotoSku);
    else gotoOrder(target.dataset.gotoOrder);
  });

  $('sku-form').addEventListener('submit', (ev) => { ev.preventDefault(); searchSkus($('sku-input').value); });
  $('order-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadOrder($('order-input').value); });
  for (const id of ['show-inventory', 'show-alert', 'show-order', 'feed-only-sku']) {
    $(id).addEventListener('change', () => { for (const li of $('feed').children) applyFeedFilter(li); });
  }
  $('feed-clear').addEventListener('click', () => { $('feed').replaceChildren(); $('feed-empty').hidden = false; });

  const params = new URLSearchParams(location.search);
  if (params.get('sku')) gotoSku(params.get('sku'));
  if (params.get('order')) gotoOrder(params.get('order'));
  drawSkuChart();
  drawThroughput();
  connectStream();
})();
