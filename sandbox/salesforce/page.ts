/**
 * What the CRM user sees: one plain page listing the Cases, Leads, device Assets, device
 * summaries and platform events the org received, newest first, refreshed as they arrive (the
 * page polls `/_sandbox/view`), with the API use of the day and the Web-to posts that were dropped.
 * Cases show what a support agent works from: the device, the reading, the rule and severity that
 * raised them, their status, the customer's Account by name and the analysis written back; they
 * can be filtered by device and status and are shown a page at a time.
 */
import type { Fields, PublishedEvent, StoredRecord } from './store';

const SHOWN = 100;
export const CASES_PER_PAGE = 25;

export interface PageSource {
  orgId: string;
  cases: StoredRecord[];
  leads: StoredRecord[];
  assets: StoredRecord[];
  summaries: StoredRecord[];
  events: PublishedEvent[];
  /** A record by id (the Account or Asset a Case points at). */
  record: (id: string) => StoredRecord | undefined;
  api: { used: number; max: number };
  webTo: { submitted: Record<string, number>; created: Record<string, number>; waiting: number; dropped: Array<{ kind: string; at: number; reason: string }> };
}

/** Which Cases to show: one `case` (its id), `device`, `status` (a Status, or `open` for every one not closed), `page` from 1. */
export interface CaseQuery {
  case?: string;
  device?: string;
  status?: string;
  page?: number;
}

/** What a support agent reads in a Case's row, beyond its own fields. */
export interface CaseFacts {
  Device: string;
  Reading: string;
  Rule: string;
  Severity: string;
  AccountName: string;
  Analysis: string;
}

const newest = <T>(list: T[]): T[] => list.slice(-SHOWN).reverse();
const text = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

/** "Label: value" lines of an alert Case's description (written by iot-salesforce-out's ready-made Case). */
function descriptionLine(description: string, label: string): string {
  const line = description.split('\n').find((l) => l.startsWith(`${label}: `));
  return line === undefined ? '' : line.slice(label.length + 2).trim();
}

/**
 * The device, reading, rule, severity, Account name and analysis of a Case: from its fields where
 * the flow set them (IoT_Device_Id__c, IoT_Analysis__c), else its Asset, else the lines of an
 * alert's description ("Device: pump-7", "Reading: temperature = 91.5 (threshold 80, rule: above)",
 * "Severity: major (was warning)").
 */
export function caseFacts(fields: Fields, record: PageSource['record']): CaseFacts {
  const description = text(fields.Description);
  const asset = fields.AssetId ? record(text(fields.AssetId))?.fields : undefined;
  const device = text(fields.IoT_Device_Id__c) || text(asset?.IoT_Device_Id__c) || descriptionLine(description, 'Device').replace(/ \(through gateway .*\)$/, '');
  const reading = /^(.+?) = (.+?) \(threshold (.+?)(?:, rule: (.+))?\)$/.exec(descriptionLine(description, 'Reading'));
  const accountId = text(fields.AccountId) || text(asset?.AccountId);
  return {
    Device: device,
    Reading: reading ? `${reading[1]} = ${reading[2]}` : '',
    Rule: reading ? `${reading[4] ?? ''} ${reading[3]}`.trim() : '',
    Severity: descriptionLine(description, 'Severity').split(' ')[0] ?? '',
    AccountName: accountId ? text(record(accountId)?.fields.Name) || accountId : '',
    Analysis: text(fields.IoT_Analysis__c),
  };
}

/** The Cases asked for, newest first, a page at a time, with the choices the filters offer. */
export function caseView(cases: StoredRecord[], record: PageSource['record'], query: CaseQuery): object {
  const rows: Array<Fields & CaseFacts> = cases.map((c) => ({ ...c.fields, ...caseFacts(c.fields, record) }));
  const devices = [...new Set(rows.map((r) => r.Device).filter((d) => d !== ''))].sort();
  const statuses = [...new Set(rows.map((r) => text(r.Status)).filter((s) => s !== ''))].sort();
  const matching = rows
    .filter((r) => !query.case || r.Id === query.case || text(r.Id).slice(0, 15) === query.case)
    .filter((r) => !query.device || r.Device === query.device)
    .filter((r) => !query.status || (query.status === 'open' ? r.Status !== 'Closed' : r.Status === query.status))
    .reverse();
  const pages = Math.max(1, Math.ceil(matching.length / CASES_PER_PAGE));
  const page = Math.min(Math.max(1, Math.floor(query.page ?? 1)), pages);
  return {
    total: cases.length,
    matching: matching.length,
    page,
    pages,
    perPage: CASES_PER_PAGE,
    devices,
    statuses,
    rows: matching.slice((page - 1) * CASES_PER_PAGE, page * CASES_PER_PAGE),
  };
}

/** The data behind the page, newest first. */
export function pageView(source: PageSource, query: CaseQuery = {}): object {
  return {
    orgId: source.orgId,
    api: source.api,
    cases: caseView(source.cases, source.record, query),
    leads: { total: source.leads.length, rows: newest(source.leads).map((r) => r.fields) },
    assets: { total: source.assets.length, rows: newest(source.assets).map((r) => ({ ...r.fields, AccountName: text(source.record(text(r.fields.AccountId))?.fields.Name) })) },
    summaries: { total: source.summaries.length, rows: newest(source.summaries).map((r) => r.fields) },
    events: { total: source.events.length, rows: newest(source.events).map((e) => ({ type: e.type, ...e.fields })) },
    webTo: { ...source.webTo, dropped: newest(source.webTo.dropped).slice(0, 20) },
  };
}

/** The page's icon: a cloud, as the browser tab shows it (no request for /favicon.ico). */
export const FAVICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#032d60"/><path fill="#fff" d="M9 23a5 5 0 0 1-.6-10A7 7 0 0 1 21.7 11 5.5 5.5 0 1 1 23 23z"/></svg>`;

export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Salesforce sandbox · Cases, Leads, Assets, summaries, events</title>
<link rel="icon" type="image/svg+xml" href="favicon.svg">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #181818; background: #f3f3f3; }
  header { background: #032d60; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  main { padding: 12px 20px; }
  section { background: #fff; border-radius: 4px; margin-bottom: 16px; padding: 8px 12px; box-shadow: 0 1px 2px rgba(0,0,0,.1); }
  h2 { font-size: 16px; margin: 4px 0 8px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
  th { font-weight: 600; color: #444; }
  td.description { white-space: pre-wrap; color: #444; max-width: 480px; }
  td.description details summary { cursor: pointer; color: #0b5cab; }
  td.analysis { max-width: 320px; }
  #cases td { white-space: nowrap; }
  #cases td.subject, #cases td.analysis { white-space: normal; }
  #cases td.subject { min-width: 300px; }
  #cases td.description { white-space: pre-wrap; }
  tr.new { animation: arrived 3s ease-out; }
  @keyframes arrived { from { background: #fff4b0; } to { background: transparent; } }
  .High, .critical, .major { color: #ba0517; font-weight: 600; } .Medium, .minor, .warning { color: #a96404; } .Low, .info { color: #2e844a; }
  .Closed { color: #666; }
  .muted { color: #666; }
  .filters { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
  .filters select { min-width: 160px; padding: 2px 4px; }
  .pager { display: flex; gap: 12px; align-items: center; margin-top: 8px; }
  .pager button { padding: 2px 10px; }
</style>
</head>
<body>
<header><h1>Salesforce sandbox</h1><span id="org"></span><span id="api"></span></header>
<main>
  <section><h2>Cases <span class="muted" id="cases-total"></span></h2>
    <div class="filters">
      <label>Device <select id="device"><option value="">all devices</option></select></label>
      <label>Status <select id="status"><option value="">any status</option><option value="open">open (not closed)</option></select></label>
    </div>
    <table id="cases"><thead><tr><th>Case</th><th>Subject</th><th>Device</th><th>Reading</th><th>Rule</th><th>Severity</th><th>Priority</th><th>Status</th><th>Account</th><th>Opened</th><th>Analysis</th><th>Description</th></tr></thead><tbody></tbody></table>
    <div class="pager"><button id="previous" type="button">&lsaquo; newer</button><span id="page"></span><button id="next" type="button">older &rsaquo;</button></div></section>
  <section><h2>Leads <span class="muted" id="leads-total"></span></h2>
    <table id="leads"><thead><tr><th>Name</th><th>Company</th><th>Status</th><th>Source</th><th>Created</th><th>Description</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Device Assets <span class="muted" id="assets-total"></span></h2>
    <table id="assets"><thead><tr><th>Asset</th><th>Device id</th><th>Last temperature</th><th>Last battery</th><th>Last reported</th><th>Account</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Device summaries <span class="muted" id="summaries-total"></span></h2>
    <table id="summaries"><thead><tr><th>Summary</th><th>Device id</th><th>Window</th><th>Readings</th><th>Temperature min / mean / max</th><th>Battery</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Platform events <span class="muted" id="events-total"></span></h2>
    <table id="events"><thead><tr><th>Event</th><th>Replay id</th><th>Published</th><th>Fields</th></tr></thead><tbody></tbody></table></section>
  <section><h2>Web-to-Case and Web-to-Lead</h2><p id="webto" class="muted"></p>
    <table id="dropped"><thead><tr><th>Dropped</th><th>Form</th><th>Why</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
  var seen = {};
  var first = true;
  // The filters live in the address, so that a link (from the fleet dashboard, say) opens them.
  var query = new URLSearchParams(location.search);
  function text(v) { return v === null || v === undefined ? "" : String(v); }
  function when(v) { return v ? new Date(String(v).replace("+0000", "Z")).toLocaleString() : ""; }
  function fill(id, rows, key, cells) {
    var body = document.querySelector("#" + id + " tbody");
    body.textContent = "";
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      var k = id + ":" + key(row);
      if (!seen[k] && !first) { tr.className = "new"; }
      seen[k] = true;
      cells(row).forEach(function (cell) {
        var td = document.createElement("td");
        if (cell.details && text(cell.text) !== "") {
          var details = document.createElement("details");
          var summary = document.createElement("summary");
          summary.textContent = cell.details;
          details.appendChild(summary);
          details.appendChild(document.createTextNode(text(cell.text)));
          td.appendChild(details);
        } else {
          td.textContent = text(cell.text);
        }
        if (cell.cls) { td.className = cell.cls; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  function options(select, values, keep) {
    var chosen = select.value;
    while (select.options.length > keep) { select.remove(keep); }
    values.forEach(function (v) { var o = document.createElement("option"); o.value = v; o.textContent = v; select.appendChild(o); });
    select.value = chosen;
  }
  function choose(name, value) {
    if (value) { query.set(name, value); } else { query.delete(name); }
    if (name !== "page") { query.delete("page"); }
    history.replaceState(null, "", "?" + query.toString());
    refresh();
  }
  document.getElementById("device").addEventListener("change", function (e) { choose("device", e.target.value); });
  document.getElementById("status").addEventListener("change", function (e) { choose("status", e.target.value); });
  document.getElementById("previous").addEventListener("click", function () { choose("page", String(Number(query.get("page") || 1) - 1)); });
  document.getElementById("next").addEventListener("click", function () { choose("page", String(Number(query.get("page") || 1) + 1)); });
  function refresh() {
    fetch("_sandbox/view?" + query.toString()).then(function (r) { return r.json(); }).then(function (v) {
      document.getElementById("org").textContent = "org " + v.orgId;
      document.getElementById("api").textContent = "API requests today: " + v.api.used.toLocaleString() + " of " + v.api.max.toLocaleString();
      var c = v.cases;
      document.getElementById("cases-total").textContent = "(" + (c.matching === c.total ? c.total : c.matching + " of " + c.total) + ")";
      document.getElementById("leads-total").textContent = "(" + v.leads.total + ")";
      document.getElementById("events-total").textContent = "(" + v.events.total + ")";
      document.getElementById("assets-total").textContent = "(" + v.assets.total + ")";
      document.getElementById("summaries-total").textContent = "(" + v.summaries.total + ")";
      var device = document.getElementById("device");
      var status = document.getElementById("status");
      options(device, c.devices.indexOf(query.get("device") || "") < 0 && query.get("device") ? c.devices.concat([query.get("device")]) : c.devices, 1);
      options(status, c.statuses, 2);
      device.value = query.get("device") || "";
      status.value = query.get("status") || "";
      document.getElementById("page").textContent = "page " + c.page + " of " + c.pages + " · " + c.perPage + " a page";
      document.getElementById("previous").disabled = c.page <= 1;
      document.getElementById("next").disabled = c.page >= c.pages;
      fill("assets", v.assets.rows, function (a) { return a.Id + a.LastModifiedDate; }, function (a) {
        return [{ text: a.Name }, { text: a.IoT_Device_Id__c }, { text: a.Last_Temperature__c }, { text: a.Last_Battery__c }, { text: when(a.Last_Reported__c) }, { text: a.AccountName || a.AccountId }];
      });
      fill("summaries", v.summaries.rows, function (m) { return m.Id + m.LastModifiedDate; }, function (m) {
        return [{ text: m.Name }, { text: m.Device_Id__c }, { text: when(m.Window_Start__c) + " to " + when(m.Window_End__c) }, { text: m.Readings__c },
          { text: [m.Temperature_Min__c, m.Temperature_Mean__c, m.Temperature_Max__c].map(text).join(" / ") }, { text: m.Battery_Last__c }];
      });
      fill("cases", c.rows, function (r) { return r.Id + r.LastModifiedDate; }, function (r) {
        return [{ text: r.CaseNumber }, { text: r.Subject, cls: "subject" }, { text: r.Device }, { text: r.Reading }, { text: r.Rule }, { text: r.Severity, cls: r.Severity },
          { text: r.Priority, cls: r.Priority }, { text: r.Status, cls: r.Status }, { text: r.AccountName }, { text: when(r.CreatedDate) },
          { text: r.Analysis, cls: "analysis" }, { text: r.Description, cls: "description", details: "show" }];
      });
      fill("leads", v.leads.rows, function (l) { return l.Id + l.LastModifiedDate; }, function (l) {
        return [{ text: [l.FirstName, l.LastName].filter(Boolean).join(" ") }, { text: l.Company }, { text: l.Status }, { text: l.LeadSource },
          { text: when(l.CreatedDate) }, { text: l.Description, cls: "description" }];
      });
      fill("events", v.events.rows, function (e) { return e.EventUuid; }, function (e) {
        var fields = {};
        Object.keys(e).forEach(function (k) { if (["type", "CreatedDate", "ReplayId", "EventUuid"].indexOf(k) < 0) { fields[k] = e[k]; } });
        return [{ text: e.type }, { text: e.ReplayId }, { text: when(e.CreatedDate) }, { text: JSON.stringify(fields) }];
      });
      var w = v.webTo;
      document.getElementById("webto").textContent = "Posts received: " + w.submitted.case + " Web-to-Case, " + w.submitted.lead + " Web-to-Lead; records made: " +
        w.created.case + " Cases, " + w.created.lead + " Leads; waiting (daily limit): " + w.waiting + ".";
      fill("dropped", w.dropped, function (d) { return d.at + d.reason; }, function (d) {
        return [{ text: when(new Date(d.at).toISOString()) }, { text: d.kind === "case" ? "Web-to-Case" : "Web-to-Lead" }, { text: d.reason }];
      });
      first = false;
    }).catch(function () { /* the sandbox is restarting: try again on the next tick */ });
  }
  refresh();
  setInterval(refresh, 1500);
</script>
</body>
</html>
`;
