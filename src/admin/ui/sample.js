// One divergent pair: the request, both answers side by side, the JSON tree diff (or text
// diff), the header diff, and "copy as curl". Its URL is a permalink while the sample is held.
import { h, ms, routeHash } from './dom.js';
import { get } from './api.js';
import { bodyMarks, jsonTree, parseJson, textDiffView, headerDiff } from './diff.js';

/** Single-quoted for a POSIX shell. */
function quote(text) {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

const NOT_REPLAYED = new Set(['host', 'content-length', 'connection', 'transfer-encoding', 'keep-alive', 'te', 'upgrade']);

/** The request as a curl command; secrets stay `[REDACTED]` as the sample holds them. */
export function curlOf(sample) {
  const headers = sample.request.headers;
  const host = headers.host || 'HOST';
  const parts = [`curl -X ${quote(sample.method)} ${quote(`http://${host}${sample.path}`)}`];
  for (const [name, value] of Object.entries(headers)) {
    if (!NOT_REPLAYED.has(name)) parts.push(`-H ${quote(`${name}: ${value}`)}`);
  }
  if (sample.request.body) parts.push(`--data-binary ${quote(sample.request.body)}`);
  let command = parts.join(' \\\n  ');
  if (sample.request.body_truncated) command = `# the body was cut at the sample's excerpt size\n${command}`;
  return command;
}

function message(title, excerpt, side) {
  return h('section', { class: `message side-${side}` },
    h('h3', {}, title, excerpt.status ? h('span', { class: 'status' }, ` ${excerpt.status}`) : ''),
    h('pre', { class: 'body', tabindex: 0, 'aria-label': `${title} body` }, excerpt.body || '(empty body)'),
    excerpt.body_truncated ? h('p', { class: 'muted' }, 'body cut at the sample excerpt size') : '');
}

function differencesList(differences) {
  return h('table', { class: 'differences' },
    h('caption', {}, 'Differences found by the comparison'),
    h('thead', {}, h('tr', {}, ['kind', 'where', 'change', 'primary', 'shadow', 'noise'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, differences.map((d) => h('tr', { class: d.noise ? 'is-noise' : 'diff-hit' },
      h('td', {}, d.kind), h('th', { scope: 'row' }, h('code', {}, d.path || '(whole)')), h('td', {}, d.change),
      h('td', {}, h('code', {}, d.primary ?? '')), h('td', {}, h('code', {}, d.shadow ?? '')), h('td', {}, d.noise || '')))));
}

function bodyDiff(sample) {
  const a = parseJson(sample.primary.body);
  const b = parseJson(sample.shadow_response.body);
  if (a.ok && b.ok) {
    const marks = bodyMarks(sample.differences);
    return h('div', { class: 'json-diff', id: 'json-diff' },
      h('div', { class: 'side side-primary' }, h('h3', {}, 'primary'), jsonTree(a.value, marks)),
      h('div', { class: 'side side-shadow' }, h('h3', {}, 'shadow'), jsonTree(b.value, marks)));
  }
  return textDiffView(sample.primary.body, sample.shadow_response.body);
}

function copyButton(sample, notify) {
  const command = curlOf(sample);
  return h('button', { type: 'button', id: 'copy-curl', onclick: async () => {
    try {
      await navigator.clipboard.writeText(command);
      notify('curl command copied (secrets stay [REDACTED])');
    } catch (_) {
      const box = document.getElementById('curl-text');
      box.hidden = false;
      box.select();
      notify('select and copy the command below');
    }
  } }, 'Copy as curl');
}

function view(sample, ctx) {
  const command = curlOf(sample);
  return [
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Overview'), ' › ',
      h('a', { href: routeHash(sample.route, sample.shadow) }, sample.route), ' › sample'),
    h('h1', {}, `${sample.method} ${sample.path}`),
    h('p', { class: 'stats' }, `${sample.time} · shadow ${sample.shadow} · request id `, h('code', {}, sample.request_id),
      ` · latency ${ms(sample.latency_ms.primary)} primary, ${ms(sample.latency_ms.shadow)} shadow`),
    h('p', {}, copyButton(sample, ctx.notify), ' ', h('a', { href: location.hash }, 'permalink')),
    h('textarea', { id: 'curl-text', readonly: true, hidden: true, rows: 6, 'aria-label': 'curl command' }, command),
    h('h2', {}, 'Body diff'),
    bodyDiff(sample),
    differencesList(sample.differences),
    h('h2', {}, 'Header diff'),
    headerDiff(sample.primary.headers, sample.shadow_response.headers, sample.differences),
    h('h2', {}, 'Request'),
    h('table', { class: 'headers' }, h('tbody', {}, Object.entries(sample.request.headers).map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v))))),
    sample.request.body ? h('pre', { class: 'body' }, sample.request.body) : '',
    h('h2', {}, 'Both answers'),
    h('div', { class: 'side-by-side' }, message('primary', sample.primary, 'primary'), message('shadow', sample.shadow_response, 'shadow')),
  ];
}

/** The view of one sample, found by route, shadow and request id. */
export function render(main, ctx, params) {
  main.replaceChildren(h('p', { class: 'muted' }, 'loading the sample…'));
  get(`/api/v1/samples?route=${encodeURIComponent(params.route)}&limit=100000`).then((samples) => {
    const sample = samples.find((s) => s.request_id === params.id && s.shadow === params.shadow);
    if (!sample) {
      main.replaceChildren(h('h1', {}, 'Sample no longer held'),
        h('p', {}, 'The sample store keeps the newest divergent pairs of each route (compare.samples_per_route, samples_total); this one has been replaced. '),
        h('p', {}, h('a', { href: routeHash(params.route, params.shadow) }, 'The route\'s current samples')));
      return;
    }
    main.replaceChildren(...view(sample, ctx));
  }).catch((error) => {
    main.replaceChildren(h('p', { class: 'bad' }, `cannot load the sample: ${error.message}`));
  });
  // A sample never changes: live updates leave it as it is.
  return { update() {} };
}
