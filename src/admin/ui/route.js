// A route's detail: per shadow its top diverging fields (pinnable), its latency
// distributions and their delta, the last hour, and its recent samples.
import { h, replace, percent, ms, routeHash, sampleHash, fieldKind } from './dom.js';
import { distributions, deltaBars, latencyTrend } from './charts.js';
import { get } from './api.js';
import { pinButtons, readOnlyNote } from './noise.js';

function fieldTable(entry, ctx, highlighted) {
  const diverged = entry.comparisons.diverged;
  if (entry.top_fields.length === 0) return h('p', { class: 'muted' }, 'No diverging field.');
  const routeName = entry.route_name;
  return h('table', { class: 'fields-table' },
    h('caption', {}, 'Top diverging fields (in how many diverged pairs each differed)'),
    h('thead', {}, h('tr', {}, ['field', 'kind', 'pairs', 'of diverged', 'pin'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, entry.top_fields.map((f) => h('tr', { class: f.field === highlighted ? 'highlight' : '', 'data-field': f.field },
      h('th', { scope: 'row' }, h('code', {}, f.field)),
      h('td', {}, h('span', { class: `badge kind-${fieldKind(f.field)}` }, fieldKind(f.field))),
      h('td', { class: 'num' }, String(f.count)),
      h('td', { class: 'num' }, percent(diverged ? f.count / diverged : 0)),
      h('td', {}, pinButtons(ctx, routeName, f.field, `${entry.shadow}:${f.field}`))))));
}

function shadowSection(entry, series, ctx, highlighted) {
  const c = entry.comparisons;
  const pairs = c.match + c.diverged + c.noise_only + c.unjudged;
  const kinds = Object.entries(entry.divergences_by_kind).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(' · ') || 'none';
  return h('section', { class: 'shadow-section', 'data-shadow': entry.shadow },
    h('h2', {}, `Shadow ${entry.shadow}`),
    h('p', { class: 'stats' },
      `${pairs} compared · ${c.diverged} diverged (${percent(entry.divergence_rate)}) · ${c.noise_only} noise only · ${c.unjudged} unjudged · by kind: ${kinds}`),
    fieldTable(entry, ctx, highlighted),
    h('div', { class: 'charts' },
      h('figure', {}, distributions(entry.latency_ms), h('figcaption', {}, h('span', { class: 'key-primary' }, 'primary'), ' and ', h('span', { class: 'key-shadow' }, 'shadow'), ' latency by percentile')),
      h('figure', {}, deltaBars(entry.latency_ms.delta), h('figcaption', {}, 'delta (shadow − primary), ms')),
      h('figure', {}, series ? latencyTrend(series.buckets) : h('p', { class: 'muted' }, 'no history yet'),
        h('figcaption', {}, 'last hour: p50 solid, p99 dashed'))));
}

function samplesList(samples) {
  if (samples.length === 0) return h('p', { class: 'muted' }, 'No divergent sample held.');
  return h('table', { class: 'samples' },
    h('caption', {}, 'Recent divergent samples, newest first'),
    h('thead', {}, h('tr', {}, ['time', 'shadow', 'request', 'differing fields', 'latency p / s'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, samples.map((s) => {
      const fields = [...new Set(s.differences.filter((d) => !d.noise).map((d) => d.field || d.kind))];
      return h('tr', { 'data-request-id': s.request_id },
        h('td', {}, s.time.replace('T', ' ').replace('Z', '')),
        h('td', {}, s.shadow),
        h('th', { scope: 'row' }, h('a', { href: sampleHash(s), 'data-key': `sample:${s.shadow}:${s.request_id}` }, `${s.method} ${s.path}`)),
        h('td', {}, fields.slice(0, 4).map((f) => h('code', { class: 'field' }, f)), fields.length > 4 ? ` +${fields.length - 4}` : ''),
        h('td', { class: 'num' }, `${ms(s.latency_ms.primary)} / ${ms(s.latency_ms.shadow)}`));
    })));
}

/** The view of `params.route` (a label); `shadow` narrows it, `field` lights a field. */
export function render(main, ctx, params) {
  const route = params.route;
  const body = h('div', {});
  const samplesBox = h('div', { id: 'samples' }, h('p', { class: 'muted' }, 'loading samples…'));
  main.replaceChildren(
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' › route'),
    h('h1', {}, h('code', {}, route)),
    body,
    h('h2', {}, 'Samples'),
    samplesBox);
  let scrolled = false;

  async function loadSamples() {
    try {
      const samples = await get(`/api/v1/samples?route=${encodeURIComponent(route)}&limit=20`);
      replace(samplesBox, samplesList(samples.filter((s) => !params.shadow || s.shadow === params.shadow)));
    } catch (error) {
      replace(samplesBox, h('p', { class: 'bad' }, `samples: ${error.message}`));
    }
  }

  function update(next) {
    ctx = next;
    const entries = (ctx.routes || []).filter((e) => e.route === route && (!params.shadow || e.shadow === params.shadow));
    const series = new Map((ctx.history?.series || []).map((s) => [`${s.route}\u0000${s.shadow}`, s]));
    replace(body, readOnlyNote(ctx), entries.length ? entries.map((e) => shadowSection(e, series.get(`${e.route}\u0000${e.shadow}`), ctx, params.field)) :
      h('p', { class: 'muted' }, 'This route has no compared pairs (yet).'),
    params.shadow ? h('p', {}, h('a', { href: routeHash(route) }, 'every shadow of this route')) : '');
    if (params.field && !scrolled) {
      const row = body.querySelector(`tr[data-field="${CSS.escape(params.field)}"]`);
      if (row) {
        scrolled = true;
        row.scrollIntoView({ block: 'center' });
      }
    }
    loadSamples();
  }
  update(ctx);
  return { update };
}
