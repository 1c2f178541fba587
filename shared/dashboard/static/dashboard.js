// ComputePlane dashboard: plain JavaScript, no framework, no other origin. It reads the API with the key pasted
// once (kept in sessionStorage: this tab only, never in the URL) and redraws the current view every few seconds.
"use strict";

const KEY_ITEM = "computeplane.apiKey";
const REFRESH_MS = 1500;
const TIMELINE_STATES = ["preparing", "idle", "running", "leaving", "preempted"];
const ALL_NODE_STATES = [...TIMELINE_STATES, "unusable"];
const TERMINAL_JOB_STATES = new Set(["Completed", "Failed", "Canceled"]);

let generation = 0; // a newer view or refresh wins over an older one still waiting for answers
let timer = null;
const jobPage = { attempt: null, jobId: null };

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error && body.error.code;
  }
}

// --- small DOM helpers: every value goes in as text, never as markup --------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

const enc = encodeURIComponent;
const pill = (text) => h("span", { class: `pill ${text}` }, text);
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");
const dateTime = (iso) => (iso ? new Date(iso).toLocaleString() : "");

// --- the API -----------------------------------------------------------------------------------------------------
function apiKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

async function api(path) {
  const response = await fetch(path, { headers: { "x-functions-key": apiKey() || "" }, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// --- routing: #/  #/w/{ws}  #/w/{ws}/c/{cluster}  #/w/{ws}/j/{job} -----------------------------------------------
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== "w" || !parts[1]) return { view: "workspaces" };
  if (parts[2] === "c" && parts[3]) return { view: "cluster", workspace: parts[1], cluster: parts[3] };
  if (parts[2] === "j" && parts[3]) return { view: "job", workspace: parts[1], job: parts[3] };
  return { view: "workspace", workspace: parts[1] };
}

function crumbs(r) {
  const items = [];
  if (r.workspace) items.push(h("a", { href: `#/w/${enc(r.workspace)}` }, `workspace ${r.workspace}`));
  if (r.cluster) items.push(h("span", {}, ` / cluster ${r.cluster}`));
  if (r.job) items.push(h("span", {}, ` / job ${r.job}`));
  document.getElementById("crumbs").replaceChildren(...items);
}

async function refresh() {
  const mine = ++generation;
  const r = route();
  if (!apiKey()) {
    showKeyForm("");
    return;
  }
  document.getElementById("key-form").hidden = true;
  document.getElementById("forget-key").hidden = false;
  crumbs(r);
  let content;
  try {
    content = await VIEWS[r.view](r);
    document.getElementById("live").className = "live";
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      sessionStorage.removeItem(KEY_ITEM);
      showKeyForm("That key was not accepted. Paste a valid API key.");
      return;
    }
    document.getElementById("live").className = "live stale";
    content = h("div", { class: "card error", id: "view-error", role: "alert" },
      error instanceof ApiError && error.status === 403 ? `Not allowed: ${error.message}` : String(error.message));
  }
  if (mine === generation) document.getElementById("view").replaceChildren(content);
}

function showKeyForm(message) {
  document.getElementById("view").replaceChildren();
  document.getElementById("key-form").hidden = false;
  document.getElementById("forget-key").hidden = true;
  document.getElementById("key-error").textContent = message;
}

// --- views -------------------------------------------------------------------------------------------------------
const VIEWS = {
  async workspaces() {
    const visible = await api("/api/workspaces");
    if (visible.workspaces === null) {
      const input = h("input", { id: "workspace-input", value: "default", "aria-label": "workspace" });
      const form = h("form", { id: "workspace-form" }, input, " ", h("button", { type: "submit" }, "Open"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        location.hash = `#/w/${enc(input.value.trim() || "default")}`;
      });
      return h("div", { class: "card" }, h("h1", {}, "Workspaces"),
        h("p", { class: "muted" }, "This key may see every workspace. Open one by name:"), form);
    }
    if (visible.workspaces.length === 1) {
      location.replace(`#/w/${enc(visible.workspaces[0])}`);
    }
    return h("div", { class: "card" }, h("h1", {}, "Workspaces"),
      h("ul", { id: "workspace-list" }, visible.workspaces.map((w) => h("li", {}, h("a", { href: `#/w/${enc(w)}` }, w)))));
  },

  async workspace(r) {
    const clusters = await api(`/api/workspaces/${enc(r.workspace)}/clusters`);
    const regions = [...new Set(clusters.map((c) => c.location || ""))];
    const usages = await Promise.all(regions.map((region) =>
      api(`/api/usages${region ? `?location=${enc(region)}` : ""}`)));
    if (!usages.length) usages.push(await api("/api/usages"));
    return h("div", { id: "workspace-view", "data-workspace": r.workspace },
      h("h1", {}, `Workspace ${r.workspace}`),
      h("h2", {}, "Clusters"),
      clusters.length ? clusterTable(r.workspace, clusters)
        : h("p", { class: "card muted", id: "no-clusters" }, "No clusters yet."),
      problems(clusters),
      h("h2", {}, "Quota use"),
      h("div", { class: "grid" }, usages.map(quotaCard)));
  },

  async cluster(r) {
    const base = `/api/workspaces/${enc(r.workspace)}/clusters/${enc(r.cluster)}`;
    const [cluster, timelineData, jobs] = await Promise.all([api(base), api(`${base}/node-timeline`), api(`${base}/jobs`)]);
    const scale = cluster.scale_settings;
    return h("div", { id: "cluster-view" },
      h("h1", {}, `Cluster ${cluster.name} `, pill(cluster.provisioning_state), " ", pill(cluster.allocation_state)),
      h("div", { class: "card" },
        h("div", { class: "counts" }, nodeCounts(cluster.node_state_counts)),
        h("div", { class: "muted" }, `${cluster.current_node_count} node(s), target ${cluster.target_node_count}; `,
          `${cluster.vm_size}, ${cluster.vm_priority}${cluster.location ? `, ${cluster.location}` : ""}`),
        problems([cluster])),
      h("h2", {}, "Node timeline"),
      h("div", { class: "card" }, timeline(timelineData)),
      h("h2", {}, "Scale settings"),
      h("div", { class: "card" }, h("dl", { class: "settings", id: "scale-settings" },
        h("dt", {}, "min nodes"), h("dd", {}, scale.min_nodes),
        h("dt", {}, "max nodes"), h("dd", {}, scale.max_nodes),
        h("dt", {}, "idle seconds before scale-down"), h("dd", {}, scale.idle_seconds_before_scaledown))),
      h("h2", {}, "Jobs"),
      jobs.length ? jobTable(r.workspace, jobs) : h("p", { class: "card muted" }, "No jobs yet."));
  },

  async job(r) {
    if (jobPage.jobId !== r.job) Object.assign(jobPage, { jobId: r.job, attempt: null });
    const base = `/api/workspaces/${enc(r.workspace)}/jobs/${enc(r.job)}`;
    const job = await api(base);
    const attempt = jobPage.attempt || Math.max(job.attempts, 1);
    const logs = await api(`${base}/logs?attempt=${attempt}`);
    const picker = h("select", { id: "attempt", "aria-label": "attempt" },
      Array.from({ length: Math.max(job.attempts, 1) }, (_, i) =>
        h("option", { value: i + 1, selected: i + 1 === attempt }, `attempt ${i + 1}`)));
    picker.addEventListener("change", () => { jobPage.attempt = Number(picker.value); refresh(); });
    const running = !TERMINAL_JOB_STATES.has(job.state);
    return h("div", { id: "job-view", "data-state": job.state },
      h("h1", {}, `Job ${job.id} `, pill(job.state)),
      h("div", { class: "card" }, h("dl", { class: "settings" },
        h("dt", {}, "cluster"), h("dd", {}, h("a", { href: `#/w/${enc(r.workspace)}/c/${enc(job.cluster)}` }, job.cluster)),
        h("dt", {}, "command"), h("dd", {}, h("code", {}, job.command.join(" "))),
        h("dt", {}, "nodes"), h("dd", {}, `${job.node_count} asked; ${job.nodes.join(", ") || "none yet"}`),
        h("dt", {}, "attempts"), h("dd", {}, `${job.attempts} (max retries ${job.max_retries})`),
        h("dt", {}, "reason"), h("dd", {}, job.reason || "—"),
        h("dt", {}, "exit code"), h("dd", {}, job.exit_code ?? "—"))),
      h("h2", {}, "State history"),
      h("table", { id: "job-history" }, h("thead", {}, h("tr", {}, ["time", "state", "attempt", "reason"].map((c) => h("th", {}, c)))),
        h("tbody", {}, job.history.map((e) => h("tr", {}, h("td", {}, dateTime(e.time)), h("td", {}, pill(e.state)),
          h("td", {}, e.attempt), h("td", {}, e.reason || ""))))),
      h("h2", {}, "Logs ", picker, running ? h("span", { class: "muted" }, " (streaming)") : null),
      h("pre", { class: "logs", id: "job-logs" }, logs.logs || "(no output yet)"));
  },
};

// --- pieces ------------------------------------------------------------------------------------------------------
function nodeCounts(counts) {
  return ALL_NODE_STATES.filter((st) => counts[st] || TIMELINE_STATES.includes(st)).map((st) =>
    h("span", { "data-state": st }, h("span", { class: "swatch", "data-swatch": st }), `${st} ${counts[st] || 0}`));
}

function clusterTable(workspace, clusters) {
  return h("table", { id: "clusters" },
    h("thead", {}, h("tr", {}, ["name", "VM size", "provisioning", "allocation", "nodes by state", "nodes / target"].map((c) => h("th", {}, c)))),
    h("tbody", {}, clusters.map((c) => h("tr", { "data-cluster": c.name },
      h("td", {}, h("a", { href: `#/w/${enc(workspace)}/c/${enc(c.name)}` }, c.name)),
      h("td", {}, `${c.vm_size} (${c.vm_priority})`),
      h("td", {}, pill(c.provisioning_state)),
      h("td", {}, pill(c.allocation_state)),
      h("td", { class: "counts" }, nodeCounts(c.node_state_counts)),
      h("td", {}, `${c.current_node_count} / ${c.target_node_count}`)))));
}

function problems(clusters) {
  const items = [];
  for (const c of clusters) {
    for (const e of c.errors) items.push(h("li", { class: "error" }, `${c.name}: ${e.code}: ${e.message}`));
    for (const w of c.warnings) items.push(h("li", { class: "warning" }, `${c.name}: ${w}`));
  }
  return items.length ? h("div", { class: "card", id: "problems" }, h("h2", {}, "Errors and warnings"), h("ul", {}, items)) : null;
}

function usageBar(label, current, limit) {
  const share = limit > 0 ? Math.min(100, (100 * current) / limit) : 100;
  return h("div", { class: "usage" }, h("div", {}, `${label}: ${current} / ${limit} vCPUs`),
    h("div", { class: `bar${current >= limit ? " full" : ""}` }, h("div", { style: null, "data-share": share.toFixed(0) })));
}

function quotaCard(usage) {
  const used = usage.families.filter((f) => f.current > 0);
  return h("div", { class: "card quota", "data-location": usage.location },
    h("strong", {}, usage.location),
    usageBar("dedicated, all families", usage.total_regional_dedicated_vcpus.current, usage.total_regional_dedicated_vcpus.limit),
    usageBar("low priority", usage.low_priority_vcpus.current, usage.low_priority_vcpus.limit),
    used.map((f) => usageBar(f.name, f.current, f.limit)),
    h("div", { class: "muted" }, `${usage.families.length - used.length} other VM families unused`));
}

function jobTable(workspace, jobs) {
  const sorted = [...jobs].sort((a, b) => b.submitted_at.localeCompare(a.submitted_at));
  return h("table", { id: "jobs" },
    h("thead", {}, h("tr", {}, ["job", "state", "waiting reason / reason", "attempts", "nodes", "submitted"].map((c) => h("th", {}, c)))),
    h("tbody", {}, sorted.map((j) => h("tr", { "data-job": j.id, "data-state": j.state },
      h("td", {}, h("a", { href: `#/w/${enc(workspace)}/j/${enc(j.id)}` }, j.id)),
      h("td", {}, pill(j.state)), h("td", {}, j.reason || ""), h("td", {}, j.attempts),
      h("td", {}, j.node_count), h("td", {}, time(j.submitted_at))))));
}

// The node timeline: node counts by state, stacked, as steps (a count holds until the next sample).
function timeline(data) {
  const width = 900, height = 220, left = 36, right = 10, top = 10, bottom = 24;
  const now = Date.parse(data.now);
  const samples = data.samples.map((x) => ({ t: Date.parse(x.time), counts: x.counts }));
  const start = Math.min(samples.length ? samples[0].t : now, now - 60_000);
  const totals = samples.map((x) => TIMELINE_STATES.reduce((sum, st) => sum + (x.counts[st] || 0), 0));
  const peak = Math.max(0, ...totals);
  const current = totals.length ? totals[totals.length - 1] : 0;
  const yMax = Math.max(1, peak);
  const x = (t) => left + ((t - start) / Math.max(1, now - start)) * (width - left - right);
  const y = (n) => height - bottom - (n / yMax) * (height - top - bottom);

  const svg = s("svg", { class: "timeline", id: "node-timeline", viewBox: `0 0 ${width} ${height}`,
    preserveAspectRatio: "none", role: "img", "data-peak": peak, "data-current": current,
    "aria-label": `node timeline: now ${current} nodes, peak ${peak}` });
  for (const n of [0, yMax]) {
    svg.append(s("line", { x1: left, x2: width - right, y1: y(n), y2: y(n), stroke: "#dde1e8" }));
    svg.append(s("text", { x: left - 6, y: y(n) + 4, "text-anchor": "end" }, n));
  }
  TIMELINE_STATES.forEach((state, k) => {
    const upper = [], lower = [];
    samples.forEach((sample, i) => {
      const below = TIMELINE_STATES.slice(0, k).reduce((sum, st) => sum + (sample.counts[st] || 0), 0);
      const above = below + (sample.counts[state] || 0);
      const x0 = x(sample.t), x1 = x(i + 1 < samples.length ? samples[i + 1].t : now);
      upper.push(`${x0},${y(above)}`, `${x1},${y(above)}`);
      lower.unshift(`${x1},${y(below)}`, `${x0},${y(below)}`);
    });
    if (upper.length) {
      svg.append(s("polygon", { points: [...upper, ...lower].join(" "), class: `band ${state}`,
        fill: getComputedStyle(document.documentElement).getPropertyValue(`--${state}`).trim() || "#999" },
      s("title", {}, state)));
    }
  });
  svg.append(s("text", { x: left, y: height - 6 }, time(new Date(start).toISOString())));
  svg.append(s("text", { x: width - right, y: height - 6, "text-anchor": "end" }, `now ${time(data.now)}`));
  const legend = h("div", { class: "legend" }, TIMELINE_STATES.map((st) =>
    h("span", {}, h("span", { class: "swatch", "data-swatch": st }), st)),
  h("span", { id: "timeline-summary", class: "muted" }, `now ${current} node(s), peak ${peak}`));
  return h("div", {}, svg, legend);
}

// Inline styles are refused by the page's Content-Security-Policy: colours and widths are set through the CSSOM.
function paint(root) {
  for (const el of root.querySelectorAll("[data-swatch]")) {
    el.style.background = `var(--${el.getAttribute("data-swatch")})`;
  }
  for (const el of root.querySelectorAll("[data-share]")) el.style.width = `${el.getAttribute("data-share")}%`;
}

// --- start -------------------------------------------------------------------------------------------------------
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    await refresh();
    schedule();
  }, REFRESH_MS);
}

new MutationObserver(() => paint(document.getElementById("view"))).observe(
  document.getElementById("view"), { childList: true, subtree: true });

document.getElementById("key-entry").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("key-input");
  sessionStorage.setItem(KEY_ITEM, input.value.trim());
  input.value = "";
  await refresh();
  schedule();
});
document.getElementById("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_ITEM);
  showKeyForm("");
});
window.addEventListener("hashchange", () => { refresh(); schedule(); });
refresh();
schedule();
