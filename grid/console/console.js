// tianwang officer console: plain JavaScript, no build step, no external assets.
// Log in -> bearer token in sessionStorage (gone when the tab closes). Live updates by
// polling the officer API every 2 s (GET /v1/incidents with the filters, GET /v1/nodes for
// the map; the open incident's detail too): EventSource cannot send the Authorization
// header, and a token in a URL would end up in logs. All data goes into the page as text
// (textContent), never as markup.
"use strict";

(() => {
  const POLL_MS = 2000;
  const TOKEN_KEY = "tianwang.token";
  const SVG = "http://www.w3.org/2000/svg";
  const STATUS = {
    open: "待确认 open",
    acknowledged: "已确认 acknowledged",
    dispatched: "已出动 dispatched",
    resolved: "已办结 resolved",
    closed: "已关闭 closed",
  };
  const NODE_STATE = {
    open: "待确认 open incident",
    acknowledged: "处置中 acknowledged",
    offline: "离线 offline",
    normal: "正常 normal",
  };
  // The moves the store allows (grid/_store.py TRANSITIONS) that the console offers.
  const CAN = {
    acknowledge: ["open"],
    dispatch: ["acknowledged"],
    resolve: ["acknowledged", "dispatched"],
  };

  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    timer: null,
    seenIncidents: "",
    seenNodes: "",
    selected: null, // incident id shown in the detail panel
    seenDetail: "",
    nodes: [],
    rules: new Set(),
    busy: false,
    inFlight: false,
    again: false,
  };

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (response.status === 401 && path !== "/v1/login") {
      signedOut("登录已过期 Session expired: please log in again.");
      throw new ApiError(401, "signed out");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const payload = await response.json();
        detail = typeof payload.detail === "string" ? payload.detail : JSON.stringify(payload);
      } catch (_) {
        /* not JSON */
      }
      if (response.status === 429) {
        const wait = response.headers.get("Retry-After");
        if (wait) detail += ` (${wait} s)`;
      }
      throw new ApiError(response.status, detail);
    }
    return response.status === 204 ? null : response.json();
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    return node;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, "0");
    return (
      `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
    );
  }

  function number(v) {
    if (v === null || v === undefined) return "—";
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
  }

  function setLive(kind, text) {
    const live = $("live");
    live.dataset.state = kind;
    live.textContent = text;
  }

  // --- session -------------------------------------------------------------------------

  async function login(event) {
    event.preventDefault();
    $("login-error").textContent = "";
    $("login-submit").disabled = true;
    try {
      const issued = await api("POST", "/v1/login", {
        officer_id: $("officer-id").value.trim(),
        password: $("password").value,
      });
      state.token = issued.access_token;
      sessionStorage.setItem(TOKEN_KEY, state.token);
      $("password").value = "";
      await start();
    } catch (err) {
      $("login-error").textContent =
        err.status === 401 ? "工号或密码错误 Officer id or password wrong." : String(err.message);
    } finally {
      $("login-submit").disabled = false;
    }
  }

  async function logout() {
    try {
      await api("POST", "/v1/logout");
    } catch (_) {
      /* signed out anyway */
    }
    signedOut("");
  }

  function signedOut(message) {
    clearTimeout(state.timer);
    state.timer = null;
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    Object.assign(state, { seenIncidents: "", seenNodes: "", seenDetail: "", selected: null });
    $("console-view").hidden = true;
    $("session").hidden = true;
    $("detail").hidden = true;
    $("login-view").hidden = false;
    $("login-error").textContent = message;
  }

  async function start() {
    let me;
    let findings;
    try {
      [me, findings] = await Promise.all([api("GET", "/v1/me"), api("GET", "/v1/findings")]);
    } catch (err) {
      if (err.status !== 401) $("login-error").textContent = String(err.message);
      return;
    }
    const roles = me.roles.map((r) => r.name).join(", ");
    $("who").textContent = `${me.name} (${me.officer_id})${roles ? " · " + roles : ""}`;
    const select = $("d-finding");
    select.replaceChildren(
      ...findings.map((f) =>
        el("option", { value: f.code, text: f.label_zh ? `${f.label_zh} ${f.code}` : f.code, title: f.label })
      )
    );
    $("login-view").hidden = true;
    $("session").hidden = false;
    $("console-view").hidden = false;
    setLive("idle", "连接中 connecting");
    await poll();
  }

  // --- polling -------------------------------------------------------------------------

  function filterQuery() {
    const params = new URLSearchParams({ limit: "200" });
    for (const [name, id] of [
      ["status", "f-status"],
      ["quantity", "f-quantity"],
      ["rule", "f-rule"],
      ["village", "f-village"],
      ["node", "f-node"],
    ]) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    return params.toString();
  }

  // One refresh at a time: a call during one asks for another right after it.
  async function poll() {
    clearTimeout(state.timer);
    state.timer = null;
    if (!state.token) return;
    if (state.inFlight) {
      state.again = true;
      return;
    }
    state.inFlight = true;
    try {
      await refresh();
      setLive("ok", `实时 live · ${when(new Date().toISOString()).slice(11)}`);
    } catch (err) {
      if (err.status !== 401) setLive("error", `连接中断 retrying: ${err.message}`);
    } finally {
      state.inFlight = false;
    }
    if (state.again) {
      state.again = false;
      await poll();
    } else if (state.token) {
      state.timer = setTimeout(poll, POLL_MS);
    }
  }

  async function refresh() {
    const [page, nodes] = await Promise.all([
      api("GET", `/v1/incidents?${filterQuery()}`),
      api("GET", "/v1/nodes"),
    ]);
    const pageKey = JSON.stringify(page);
    if (pageKey !== state.seenIncidents) {
      state.seenIncidents = pageKey;
      renderIncidents(page);
    }
    const nodesKey = JSON.stringify(nodes);
    if (nodesKey !== state.seenNodes) {
      state.seenNodes = nodesKey;
      state.nodes = nodes;
      renderFilterChoices(nodes);
      renderMap(nodes);
    }
    if (state.selected !== null) await loadDetail(state.selected);
  }

  // --- inbox ---------------------------------------------------------------------------

  function renderIncidents(page) {
    $("total").textContent = `(${page.items.length} / ${page.total})`;
    $("empty").hidden = page.items.length > 0;
    const rows = page.items.map((i) => {
      const place = i.scope === "township" ? `${i.township} 乡镇 township` : i.node;
      const where = [i.county, i.township, i.village, i.node].filter(Boolean).join(" / ");
      const value = `${number(i.value)}${i.limit_value !== null ? " / " + number(i.limit_value) : ""} ${i.unit}`;
      const actions = el("td");
      if (i.status === "open") {
        actions.append(
          el("button", {
            type: "button",
            class: "act-ack",
            text: "确认 Acknowledge",
            "data-action": "acknowledge",
          })
        );
      } else {
        actions.append(el("button", { type: "button", text: "详情 Details", "data-action": "open" }));
      }
      const row = el(
        "tr",
        { "data-incident": String(i.id), "data-status": i.status },
        el("td", { text: String(i.id) }),
        el(
          "td",
          {},
          el("span", { class: `status status-${i.status}`, text: STATUS[i.status] || i.status }),
          el("span", { class: `sev sev-${i.severity}`, text: i.severity })
        ),
        el("td", { text: place, title: where }),
        el("td", { text: `${i.quantity} · ${i.rule}` }),
        el("td", { text: value }),
        el("td", { text: when(i.updated_at).slice(5, 16), title: when(i.updated_at) }),
        actions
      );
      if (i.id === state.selected) row.classList.add("selected");
      state.rules.add(i.rule);
      return row;
    });
    $("incidents").tBodies[0].replaceChildren(...rows);
    const rules = $("rules");
    if (rules.options.length !== state.rules.size) {
      rules.replaceChildren(...[...state.rules].sort().map((r) => el("option", { value: r })));
    }
  }

  function renderFilterChoices(nodes) {
    const keep = (select, options) => {
      const current = select.value;
      select.replaceChildren(select.options[0], ...options);
      select.value = current;
      if (select.value !== current) select.value = "";
    };
    const quantities = [...new Set(nodes.flatMap((n) => n.quantities))].sort();
    keep($("f-quantity"), quantities.map((q) => el("option", { value: q, text: q })));
    const villages = new Map();
    for (const n of nodes) villages.set(n.village, `${n.village_name} ${n.village}`);
    keep(
      $("f-village"),
      [...villages].sort().map(([id, label]) => el("option", { value: id, text: label }))
    );
  }

  async function act(id, action, extra = {}) {
    if (state.busy) return;
    state.busy = true;
    $("d-error").textContent = "";
    const reason = $("d-reason").value.trim();
    const defaults = {
      acknowledge: "已确认 acknowledged in the console",
      dispatch: "已出动 dispatched",
      resolve: "已办结 resolved",
    };
    let body;
    if (action === "notes") {
      if (!reason) {
        $("d-error").textContent = "请输入备注 Type the note first.";
        state.busy = false;
        return;
      }
      body = { text: reason };
    } else {
      body = { reason: reason || defaults[action], ...extra };
    }
    try {
      await api("POST", `/v1/incidents/${id}/${action}`, body);
      if (state.selected === id) $("d-reason").value = "";
    } catch (err) {
      if (err.status !== 401) {
        if (state.selected !== id) select(id);
        $("d-error").textContent = `${action}: ${err.message}`;
      }
    } finally {
      state.busy = false;
    }
    state.seenIncidents = "";
    state.seenDetail = "";
    await poll();
  }

  function onTableClick(event) {
    const row = event.target.closest("tr[data-incident]");
    if (!row) return;
    const id = Number(row.dataset.incident);
    const button = event.target.closest("button[data-action]");
    if (button && button.dataset.action === "acknowledge") {
      act(id, "acknowledge");
      return;
    }
    select(id);
  }

  // --- detail --------------------------------------------------------------------------

  function select(id) {
    state.selected = id;
    state.seenDetail = "";
    for (const row of $("incidents").tBodies[0].rows) {
      row.classList.toggle("selected", Number(row.dataset.incident) === id);
    }
    $("d-error").textContent = "";
    $("d-reason").value = "";
    loadDetail(id).catch((err) => {
      $("d-error").textContent = String(err.message);
    });
  }

  async function loadDetail(id) {
    let detail;
    try {
      detail = await api("GET", `/v1/incidents/${id}`);
    } catch (err) {
      if (err.status === 404) {
        closeDetail();
        return;
      }
      throw err;
    }
    if (state.selected !== id) return;
    const key = JSON.stringify(detail);
    if (key === state.seenDetail) return;
    state.seenDetail = key;
    renderDetail(detail);
  }

  function renderDetail(d) {
    $("detail").hidden = false;
    $("detail").dataset.incident = String(d.id);
    $("d-title").textContent = `事件 Incident #${d.id} · ${STATUS[d.status] || d.status}`;
    const fields = [
      ["地点 Place", [d.county, d.township, d.village, d.node].filter(Boolean).join(" / ")],
      ["指标 Quantity", `${d.quantity} · ${d.rule}`],
      ["数值 Value", `${number(d.value)} (peak ${number(d.peak)}) ${d.unit}`],
      ["限值 Limit", d.limit_value === null ? "—" : `${number(d.limit_value)} ${d.unit} · ${d.edition}`],
      ["级别 Severity", `${d.severity} · ${d.assigned_level}`],
      ["负责人 Officer", d.officer_id],
      ["开始 Started", when(d.started_at)],
      ["确认期限 Ack due", when(d.ack_due_at) || "—"],
      ["结论 Finding", d.finding || "—"],
      ["事件数 Events", String(d.events)],
    ];
    $("d-fields").replaceChildren(
      ...fields.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])
    );
    $("d-ack").disabled = !CAN.acknowledge.includes(d.status);
    $("d-dispatch").disabled = !CAN.dispatch.includes(d.status);
    $("d-resolve").disabled = !CAN.resolve.includes(d.status);
    $("d-finding").disabled = !CAN.resolve.includes(d.status);
    $("d-audit").replaceChildren(
      ...d.audit.map((a) => {
        const move = a.to_status ? ` ${a.from_status || ""} → ${a.to_status}` : "";
        return el("li", { text: `${when(a.at)} · ${a.actor} · ${a.action}${move} · ${a.reason}` });
      })
    );
  }

  function closeDetail() {
    state.selected = null;
    state.seenDetail = "";
    $("detail").hidden = true;
    for (const row of $("incidents").tBodies[0].rows) row.classList.remove("selected");
  }

  function onDetailAction(event) {
    const button = event.target.closest("button[data-action]");
    if (!button || state.selected === null) return;
    const action = button.dataset.action;
    act(state.selected, action, action === "resolve" ? { finding: $("d-finding").value } : {});
  }

  // --- map -----------------------------------------------------------------------------

  function renderMap(nodes) {
    const map = $("map");
    const [W, H, PAD] = [600, 480, 30];
    const counts = { open: 0, acknowledged: 0, offline: 0, normal: 0 };
    for (const n of nodes) counts[n.state] = (counts[n.state] || 0) + 1;
    for (const b of document.querySelectorAll("#legend [data-count]")) {
      b.textContent = String(counts[b.dataset.count] || 0);
    }
    if (nodes.length === 0) {
      const label = svg("text", { x: W / 2, y: H / 2, class: "empty-label" });
      label.textContent = "无站点 No nodes in your jurisdiction";
      map.replaceChildren(label);
      return;
    }
    // Equirectangular, east-west distances shrunk by cos(latitude): fine for one county.
    const lats = nodes.map((n) => n.lat);
    const lons = nodes.map((n) => n.lon);
    const [lat0, lat1] = [Math.min(...lats), Math.max(...lats)];
    const [lon0, lon1] = [Math.min(...lons), Math.max(...lons)];
    const k = Math.cos((((lat0 + lat1) / 2) * Math.PI) / 180);
    const spanX = Math.max((lon1 - lon0) * k, 1e-6);
    const spanY = Math.max(lat1 - lat0, 1e-6);
    const scale = Math.min((W - 2 * PAD) / spanX, (H - 2 * PAD) / spanY);
    const offX = (W - spanX * scale) / 2;
    const offY = (H - spanY * scale) / 2;
    const x = (lon) => (lon1 === lon0 ? W / 2 : offX + (lon - lon0) * k * scale);
    const y = (lat) => (lat1 === lat0 ? H / 2 : H - offY - (lat - lat0) * scale);

    const villages = new Map();
    for (const n of nodes) {
      const v = villages.get(n.village) || { name: n.village_name, xs: [], ys: [] };
      v.xs.push(x(n.lon));
      v.ys.push(y(n.lat));
      villages.set(n.village, v);
    }
    const labels = [...villages.values()].map((v) => {
      const mean = (a) => a.reduce((s, t) => s + t, 0) / a.length;
      const t = svg("text", { x: mean(v.xs).toFixed(1), y: (Math.min(...v.ys) - 10).toFixed(1), class: "village-label" });
      t.textContent = v.name;
      return t;
    });
    const picked = $("f-node").value.trim();
    // Draw normal nodes first, so that a node needing attention is never hidden under one.
    const order = { normal: 0, offline: 1, acknowledged: 2, open: 3 };
    const dots = [...nodes]
      .sort((a, b) => order[a.state] - order[b.state])
      .map((n) => {
        const dot = svg("circle", {
          cx: x(n.lon).toFixed(1),
          cy: y(n.lat).toFixed(1),
          r: n.state === "normal" ? 6 : 8,
          class: `node state-${n.state}${n.id === picked ? " picked" : ""}`,
          "data-node": n.id,
          "data-state": n.state,
        });
        const title = svg("title");
        const extra = n.incidents.length ? ` · #${n.incidents.join(", #")}` : "";
        title.textContent = `${n.id} · ${n.village_name} · ${NODE_STATE[n.state]}${extra}`;
        dot.append(title);
        return dot;
      });
    map.replaceChildren(...labels, ...dots);
  }

  function onMapClick(event) {
    const dot = event.target.closest("[data-node]");
    if (!dot) return;
    const node = dot.getAttribute("data-node");
    $("f-node").value = $("f-node").value === node ? "" : node;
    state.seenNodes = ""; // redraw the highlight
    filtersChanged();
  }

  // --- wiring --------------------------------------------------------------------------

  function filtersChanged() {
    state.seenIncidents = "";
    poll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("filters").addEventListener("change", filtersChanged);
    $("filters").addEventListener("submit", (e) => {
      e.preventDefault();
      filtersChanged();
    });
    $("f-clear").addEventListener("click", () => {
      $("filters").reset();
      state.seenNodes = "";
      filtersChanged();
    });
    $("incidents").addEventListener("click", onTableClick);
    $("detail").addEventListener("click", (event) => {
      if (event.target.id === "d-close") closeDetail();
      else onDetailAction(event);
    });
    $("map").addEventListener("click", onMapClick);
    if (state.token) start();
  });
})();
