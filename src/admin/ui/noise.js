// The noise view: fields learned or pinned as noise (or pinned as signal) with the evidence,
// and pinning through PUT /api/v1/noise when this page may change things.
import { h, replace } from './dom.js';
import { pin } from './api.js';

const STATES = {
  pinned_noise: 'pinned as noise',
  pinned_signal: 'pinned as signal',
  learned: 'learned as noise',
  secondary_noise: 'noise (the secondary differs too)',
  candidate: 'watched, not noise',
};

/** Why changing is not possible here, and what to do instead. */
export function readOnlyNote(ctx) {
  if (ctx.canChange) return null;
  return h('div', { class: 'note read-only', role: 'note' },
    h('strong', {}, 'Read-only. '),
    'Pinning changes the running proxy, so this admin port asks for its token (admin.token_file). ',
    h('button', { type: 'button', class: 'link', onclick: () => ctx.askToken() }, 'Give the token'),
    ' (kept in this browser tab only), or pin in the config: ',
    h('code', {}, '[routes.compare] noise = { "/field" = "noise" }'), ' and reload.');
}

/** The noise / signal pin buttons of one field of the route named `routeName`. */
export function pinButtons(ctx, routeName, field, key, current) {
  const disabled = !ctx.canChange || !routeName;
  const why = !routeName ? 'this route is no longer configured' : 'read-only: give the admin token to pin';
  const button = (as, label) => h('button', {
    type: 'button', class: `pin pin-${as}`, disabled, title: disabled ? why : `${label}: PUT /api/v1/noise`,
    'data-key': `pin:${key}:${as}`, 'data-pin': as, 'data-field': field,
    onclick: async (event) => {
      event.target.disabled = true;
      try {
        await pin(routeName, field, as);
        ctx.notify(`${field} of ${routeName}: ${as === 'none' ? 'runtime pin removed' : `pinned as ${as}`}`);
      } catch (error) {
        ctx.notify(`pinning ${field} failed: ${error.message}`, true);
      }
      ctx.refresh();
    },
  }, label);
  if (current === 'runtime') return h('span', { class: 'pins' }, button('none', 'unpin'));
  return h('span', { class: 'pins' }, button('noise', 'noise'), ' ', button('signal', 'signal'));
}

function evidence(f) {
  const parts = [];
  if (f.state.startsWith('pinned')) parts.push(`pinned in ${f.pinned_by === 'runtime' ? 'the running proxy' : 'the config'}`);
  if (f.present_pairs) parts.push(`differed in ${f.differing_pairs} of ${f.present_pairs} pairs where present`);
  if (f.secondary_pairs) parts.push(`the secondary differed in ${f.secondary_pairs} (${f.volatile_pairs} volatile-looking)`);
  parts.push(`${f.endpoint_pairs} pairs on ${f.endpoint ? 'the endpoint' : 'the route'}`);
  return parts.join(' · ');
}

function fieldRows(ctx, label, routeName, fields) {
  return fields.map((f) => h('tr', { 'data-route': label, 'data-field': f.field, 'data-state': f.state },
    h('th', { scope: 'row' }, h('code', {}, f.field)),
    h('td', {}, f.endpoint || h('em', {}, 'every endpoint')),
    h('td', {}, h('span', { class: `badge state-${f.state}` }, STATES[f.state] || f.state)),
    h('td', { class: 'evidence' }, evidence(f)),
    h('td', {}, f.state.startsWith('pinned') && f.pinned_by !== 'runtime' ? h('span', { class: 'muted' }, 'config pin') :
      pinButtons(ctx, routeName, f.field, `${label}:${f.endpoint}:${f.field}`, f.pinned_by))));
}

function table(ctx, label, routeName, fields, caption) {
  return h('table', { class: 'noise-table' }, h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ['field', 'endpoint', 'state', 'evidence', 'change'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, fieldRows(ctx, label, routeName, fields)));
}

/** The view: per route label, its noise and pins; candidates folded away. */
export function render(main, ctx) {
  const note = h('div', {});
  const body = h('div', {});
  const fieldInput = h('input', { id: 'pin-field', placeholder: '/items/*/updated_at, header:etag, status', autocomplete: 'off' });
  const routeSelect = h('select', { id: 'pin-route' });
  const form = h('div', { class: 'controls pin-form' },
    h('label', { for: 'pin-route' }, 'Route '), routeSelect,
    h('label', { for: 'pin-field' }, ' Field '), fieldInput, ' ',
    h('span', { id: 'pin-form-buttons' }));
  main.replaceChildren(
    h('h1', {}, 'Noise'),
    h('p', {}, 'Fields whose differences do not count as divergences: learned from traffic, seen differing between primary and secondary, or pinned. A field pinned as signal always counts.'),
    note, form, body);

  function update(next) {
    ctx = next;
    replace(note, readOnlyNote(ctx));
    const names = new Map((ctx.routes || []).map((e) => [e.route, e.route_name]));
    const labels = Object.keys(ctx.noise || {}).sort();
    if (routeSelect.options.length !== labels.length) {
      replace(routeSelect, labels.map((l) => h('option', { value: l }, l)));
    }
    const formButtons = form.querySelector('#pin-form-buttons');
    const chosen = () => names.get(routeSelect.value) || routeSelect.value;
    replace(formButtons, ['noise', 'signal'].map((as) => h('button', {
      type: 'button', disabled: !ctx.canChange, 'data-key': `form:${as}`,
      onclick: async () => {
        if (!fieldInput.value) return fieldInput.focus();
        try {
          await pin(chosen(), fieldInput.value, as);
          ctx.notify(`${fieldInput.value}: pinned as ${as}`);
        } catch (error) {
          ctx.notify(`pinning failed: ${error.message}`, true);
        }
        ctx.refresh();
      },
    }, `pin as ${as}`)));
    const sections = labels.map((label) => {
      const fields = ctx.noise[label];
      const held = fields.filter((f) => f.state !== 'candidate');
      const watched = fields.filter((f) => f.state === 'candidate');
      const routeName = names.get(label) || label;
      return h('section', { class: 'noise-route', 'data-route': label },
        h('h2', {}, h('code', {}, label)),
        held.length ? table(ctx, label, routeName, held, 'Noise and pins') : h('p', { class: 'muted' }, 'No noise learned or pinned.'),
        watched.length ? h('details', {}, h('summary', {}, `${watched.length} watched fields (differ sometimes, not noise)`),
          table(ctx, label, routeName, watched, 'Watched fields')) : '');
    });
    replace(body, sections.length ? sections : h('p', { class: 'muted' }, 'No route has compared pairs yet.'));
  }
  update(ctx);
  return { update };
}
