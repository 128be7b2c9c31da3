/**
 * What the CRM user sees: one plain page listing the Cases, Leads, device Assets, device
 * summaries and platform events the org received, newest first, refreshed as they arrive (the page polls `/_sandbox/view`), with the
 * API use of the day and the Web-to posts that were dropped.
 */
import type { PublishedEvent, StoredRecord } from './store';

const SHOWN = 100;

export interface PageSource {
  orgId: string;
  cases: StoredRecord[];
  leads: StoredRecord[];
  assets: StoredRecord[];
  summaries: StoredRecord[];
  events: PublishedEvent[];
  api: { used: number; max: number };
  webTo: { submitted: Record<string, number>; created: Record<string, number>; waiting: number; dropped: Array<{ kind: string; at: number; reason: string }> };
}

const newest = <T>(list: T[]): T[] => list.slice(-SHOWN).reverse();

/** The data behind the page, newest first. */
export function pageView(source: PageSource): object {
  return {
    orgId: source.orgId,
    api: source.api,
    cases: { total: source.cases.length, rows: newest(source.cases).map((r) => r.fields) },
    leads: { total: source.leads.length, rows: newest(source.leads).map((r) => r.fields) },
    assets: { total: source.assets.length, rows: newest(source.assets).map((r) => r.fields) },
    summaries: { total: source.summaries.length, rows: newest(source.summaries).map((r) => r.fields) },
    events: { total: source.events.length, rows: newest(source.events).map((e) => ({ type: e.type, ...e.fields })) },
    webTo: { ...source.webTo, dropped: newest(source.webTo.dropped).slice(0, 20) },
  };
}

export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Salesforce sandbox · Cases, Leads, Assets, summaries, events</title>
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
  tr.new { animation: arrived 3s ease-out; }
  @keyframes arrived { from { background: #fff4b0; } to { background: transparent; } }
  .High { color: #ba0517; font-weight: 600; } .Medium { color: #a96404; } .Low { color: #2e844a; }
  .muted { color: #666; }
</style>
</head>
<body>
<header><h1>Salesforce sandbox</h1><span id="org"></span><span id="api"></span></header>
<main>
  <section><h2>Cases <span class="muted" id="cases-total"></span></h2>
    <table id="cases"><thead><tr><th>Case</th><th>Subject</th><th>Priority</th><th>Status</th><th>Origin</th><th>Asset / Account</th><th>Alert id</th><th>Opened</th><th>Description</th></tr></thead><tbody></tbody></table></section>
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
        td.textContent = text(cell.text);
        if (cell.cls) { td.className = cell.cls; }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  function refresh() {
    fetch("_sandbox/view").then(function (r) { return r.json(); }).then(function (v) {
      document.getElementById("org").textContent = "org " + v.orgId;
      document.getElementById("api").textContent = "API requests today: " + v.api.used.toLocaleString() + " of " + v.api.max.toLocaleString();
      document.getElementById("cases-total").textContent = "(" + v.cases.total + ")";
      document.getElementById("leads-total").textContent = "(" + v.leads.total + ")";
      document.getElementById("events-total").textContent = "(" + v.events.total + ")";
      document.getElementById("assets-total").textContent = "(" + v.assets.total + ")";
      document.getElementById("summaries-total").textContent = "(" + v.summaries.total + ")";
      fill("assets", v.assets.rows, function (a) { return a.Id + a.LastModifiedDate; }, function (a) {
        return [{ text: a.Name }, { text: a.IoT_Device_Id__c }, { text: a.Last_Temperature__c }, { text: a.Last_Battery__c }, { text: when(a.Last_Reported__c) }, { text: a.AccountId }];
      });
      fill("summaries", v.summaries.rows, function (m) { return m.Id + m.LastModifiedDate; }, function (m) {
        return [{ text: m.Name }, { text: m.Device_Id__c }, { text: when(m.Window_Start__c) + " to " + when(m.Window_End__c) }, { text: m.Readings__c },
          { text: [m.Temperature_Min__c, m.Temperature_Mean__c, m.Temperature_Max__c].map(text).join(" / ") }, { text: m.Battery_Last__c }];
      });
      fill("cases", v.cases.rows, function (c) { return c.Id + c.LastModifiedDate; }, function (c) {
        return [{ text: c.CaseNumber }, { text: c.Subject }, { text: c.Priority, cls: c.Priority }, { text: c.Status }, { text: c.Origin },
          { text: c.AssetId || c.AccountId }, { text: c.IoT_Alert_Id__c }, { text: when(c.CreatedDate) }, { text: c.Description, cls: "description" }];
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
