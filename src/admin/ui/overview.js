// The overview: one row per (route, shadow), sortable and filterable, updated live.
import { h, replace, percent, ms, routeHash } from './dom.js';
import { sparkline } from './charts.js';

const DROPS = ['dropped_queue_full', 'dropped_body_too_large', 'dropped_client_aborted', 'dropped_primary_failed',
  'dropped_memory_budget'];
const SKIPS = ['skipped_method', 'skipped_circuit_open', 'skipped_paused'];

/** The numbers of one row, from a `/api/v1/routes` entry. */
export function rowOf(entry) {
  const c = entry.comparisons;
  const pairs = c.match + c.diverged + c.noise_only + c.unjudged;
  const outcomes = entry.mirror_outcomes || {};
  const sum = (keys) => keys.reduce((total, key) => total + (outcomes[key] || 0), 0);
  return {
    entry,
    key: `${entry.route}\u0000${entry.shadow}`,
    route: entry.route,
    shadow: entry.shadow,
    pairs,
    diverged: pairs ? c.diverged / pairs : 0,
    noise: pairs ? c.noise_only / pairs : 0,
    primaryP50: entry.latency_ms.primary.p50,
    shadowP50: entry.latency_ms.shadow.p50,
    primaryP99: entry.latency_ms.primary.p99,
    shadowP99: entry.latency_ms.shadow.p99,
    completed: outcomes.completed || 0,
    errors: (outcomes.error || 0) + (outcomes.timeout || 0),
    drops: sum(DROPS),
    skips: sum(SKIPS),
    outcomes,
  };
}

// [sort key (none: not sortable), heading, class (numeric columns align right, like their cells)]
const COLUMNS = [
  ['route', 'Route'], ['shadow', 'Shadow'], ['pairs', 'Pairs', 'num'], ['diverged', 'Diverged', 'num'],
  ['noise', 'Noise only', 'num'], [null, 'Last hour'], [null, 'Top diverging fields'],
  ['shadowP50', 'p50 primary / shadow', 'num'], ['shadowP99', 'p99 primary / shadow', 'num'],
  ['errors', 'Mirror'], [null, 'Breaker'],
];

const sort = JSON.parse(sessionStorage.getItem('overview-sort') || '{"by":"diverged","descending":true}');
const filter = { route: '', shadow: '' };

function compare(a, b) {
  const x = a[sort.by];
  const y = b[sort.by];
  const order = typeof x === 'string' ? x.localeCompare(y) : x - y;
  return (sort.descending ? -order : order) || a.key.localeCompare(b.key);
}

function mirrorCell(row) {
  const details = Object.entries(row.outcomes).map(([k, v]) => `${k}: ${v}`).join('\n') || 'nothing mirrored yet';
  return h('td', { class: 'mirror', title: details },
    h('span', { class: 'ok' }, `${row.completed} done`),
    row.errors ? h('span', { class: 'bad' }, ` · ${row.errors} failed`) : '',
    row.drops ? h('span', { class: 'warn' }, ` · ${row.drops} dropped`) : '',
    row.skips ? h('span', { class: 'muted' }, ` · ${row.skips} skipped`) : '');
}

function breakerCell(entry) {
  const state = entry.breaker || 'closed';
  const paused = entry.mirror && entry.mirror.paused;
  return h('td', {},
    h('span', { class: `badge breaker-${state}` }, state.replace('_', '-')),
    paused ? h('span', { class: 'badge paused' }, 'paused') : '');
}

function rowView(row, series) {
  const entry = row.entry;
  const top = entry.top_fields.slice(0, 3);
  const spark = series ? sparkline(series.buckets, `${row.route} ${row.shadow}: pairs per minute over the last hour, divergent part darker`) : h('span', { class: 'muted' }, '–');
  return h('tr', { 'data-route': row.route, 'data-shadow': row.shadow },
    h('th', { scope: 'row' }, h('a', { href: routeHash(row.route, row.shadow), 'data-key': `route:${row.key}` }, row.route)),
    h('td', {}, row.shadow),
    h('td', { class: 'num pairs' }, String(row.pairs)),
    h('td', { class: `num diverged ${row.diverged > 0 ? 'bad' : ''}` }, percent(row.diverged)),
    h('td', { class: 'num noise' }, percent(row.noise)),
    h('td', { class: 'spark' }, spark),
    h('td', { class: 'fields' }, top.length === 0 ? h('span', { class: 'muted' }, 'none') :
      top.map((f) => h('a', { class: 'field', href: routeHash(row.route, row.shadow, f.field), 'data-key': `field:${row.key}:${f.field}` }, f.field, h('span', { class: 'count' }, ` ${f.count}`)))),
    h('td', { class: 'num' }, `${ms(row.primaryP50)} / `, h('span', { class: row.shadowP50 > row.primaryP50 * 1.5 ? 'bad' : '' }, ms(row.shadowP50))),
    h('td', { class: 'num' }, `${ms(row.primaryP99)} / `, h('span', { class: row.shadowP99 > row.primaryP99 * 1.5 ? 'bad' : '' }, ms(row.shadowP99))),
    mirrorCell(row),
    breakerCell(entry));
}

/**
 * Rows already built, by their API entry: filtering and sorting reuse them, and only a
 * poll's new data (or new history) builds rows again.
 */
const built = new WeakMap();

function rowFor(row, series) {
  const cached = built.get(row.entry);
  if (cached && cached.series === series) return cached.element;
  const element = rowView(row, series);
  built.set(row.entry, { series, element });
  return element;
}

/** The view: controls once, the table body on every update. */
export function render(main, ctx) {
  const body = h('tbody', {});
  const summary = h('p', { class: 'summary', 'aria-live': 'polite' });
  const shadowSelect = h('select', { id: 'filter-shadow', onchange: (e) => { filter.shadow = e.target.value; update(ctx); } },
    h('option', { value: '' }, 'every shadow'));
  const routeInput = h('input', { id: 'filter-route', type: 'search', placeholder: 'filter routes (press /)', autocomplete: 'off',
    oninput: (e) => { filter.route = e.target.value; update(ctx); } });
  routeInput.value = filter.route;
  const header = h('tr', {}, COLUMNS.map(([key, label, align]) => {
    if (!key) return h('th', { scope: 'col' }, label);
    const button = h('button', { type: 'button', class: 'sort', 'data-sort': key, onclick: () => {
      // Names sort A to Z first, numbers largest first.
      sort.descending = sort.by === key ? !sort.descending : key !== 'route' && key !== 'shadow';
      sort.by = key;
      sessionStorage.setItem('overview-sort', JSON.stringify(sort));
      update(ctx);
    } }, label);
    return h('th', { scope: 'col', 'data-col': key, class: align }, button);
  }));
  main.replaceChildren(
    h('h1', {}, 'Routes and shadows'),
    h('div', { class: 'controls' },
      h('label', { for: 'filter-route' }, 'Route '), routeInput,
      h('label', { for: 'filter-shadow' }, ' Shadow '), shadowSelect),
    summary,
    h('div', { class: 'table-wrap' }, h('table', { id: 'overview', class: 'overview' }, h('thead', {}, header), body)));

  function update(next) {
    ctx = next;
    const routes = ctx.routes || [];
    const shadows = [...new Set(routes.map((e) => e.shadow))].sort();
    if (shadowSelect.options.length !== shadows.length + 1) {
      replace(shadowSelect, h('option', { value: '' }, 'every shadow'), shadows.map((s) => h('option', { value: s }, s)));
      shadowSelect.value = filter.shadow;
    }
    const needle = filter.route.toLowerCase();
    const rows = routes.map(rowOf)
      .filter((row) => (!needle || row.route.toLowerCase().includes(needle)) && (!filter.shadow || row.shadow === filter.shadow))
      .sort(compare);
    const series = new Map((ctx.history?.series || []).map((s) => [`${s.route}\u0000${s.shadow}`, s]));
    for (const th of header.querySelectorAll('th[data-col]')) {
      const key = th.dataset.col;
      if (key === sort.by) th.setAttribute('aria-sort', sort.descending ? 'descending' : 'ascending');
      else th.removeAttribute('aria-sort');
    }
    replace(body, rows.length ? rows.map((row) => rowFor(row, series.get(row.key))) :
      h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'muted' }, routes.length ? 'No route matches the filter.' : 'No compared pairs yet: send traffic through a mirrored route.')));
    const total = rows.reduce((n, row) => n + row.pairs, 0);
    summary.textContent = `${rows.length} of ${routes.length} (route, shadow) pairs shown · ${total} compared pairs`;
  }
  update(ctx);
  return { update, focusFilter: () => routeInput.focus() };
}
