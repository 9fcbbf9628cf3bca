// The sample view's diffs: a JSON tree per side with the differing paths lit and equal
// parts folded, a line diff for text, and a header table.
import { h } from './dom.js';

/** A JSON Pointer token. */
function token(key) {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * The marks of a sample's body differences: JSON Pointer -> {change, noise}. Only body
 * differences with a pointer are placed in the tree.
 */
export function bodyMarks(differences) {
  const marks = new Map();
  for (const difference of differences) {
    if (difference.kind !== 'body' || !difference.path.startsWith('/')) continue;
    marks.set(difference.path, { change: difference.change, noise: difference.noise || null });
  }
  return marks;
}

/** Whether some marked path is `path` or below it. */
function holdsMark(marks, path) {
  for (const marked of marks.keys()) {
    if (marked === path || marked.startsWith(`${path}/`)) return true;
  }
  return false;
}

/** A JSON number too long for a double, kept as written. */
class ExactNumber {
  constructor(text) {
    this.text = text;
  }
}

function scalar(value) {
  if (value instanceof ExactNumber) return h('span', { class: 'json-number' }, value.text);
  const text = JSON.stringify(value);
  return h('span', { class: `json-${value === null ? 'null' : typeof value}` }, text);
}

function markClass(mark) {
  if (!mark) return '';
  return mark.noise ? ` diff-noise diff-${mark.change}` : ` diff-hit diff-${mark.change}`;
}

function markTitle(mark) {
  if (!mark) return undefined;
  return mark.noise ? `${mark.change} (noise: ${mark.noise})` : mark.change;
}

/**
 * One document as a tree: containers are <details>, open only where a marked path lies
 * beneath; every row carries its JSON Pointer in `data-path`.
 */
export function jsonTree(value, marks, path = '', key = null) {
  const mark = marks.get(path);
  const label = key === null ? h('span', { class: 'json-key' }, '(root)') : h('span', { class: 'json-key' }, `${key}`);
  if (value === null || typeof value !== 'object' || value instanceof ExactNumber) {
    return h('div', { class: `json-row${markClass(mark)}`, 'data-path': path, title: markTitle(mark) },
      label, ': ', scalar(value));
  }
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const open = holdsMark(marks, path);
  const shape = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  const summary = h('summary', { class: `json-row${markClass(mark)}`, 'data-path': path, title: markTitle(mark) },
    label, ' ', h('span', { class: 'json-shape' }, shape), open ? '' : h('span', { class: 'json-equal' }, ' equal'));
  const details = h('details', { class: 'json-node' }, summary);
  if (open) details.open = true;
  // Children are built when first opened: a large equal subtree costs nothing until asked for.
  let built = false;
  const build = () => {
    if (built) return;
    built = true;
    for (const [childKey, child] of entries) {
      details.appendChild(jsonTree(child, marks, `${path}/${token(childKey)}`, childKey));
    }
  };
  if (open) build();
  else details.addEventListener('toggle', build);
  return details;
}

/** `text` parsed as JSON, or `{ok: false}`. */
export function parseJson(text) {
  // Numbers a double cannot hold (ids, nanosecond times) are shown as written, where the
  // browser gives the reviver the source text.
  const exact = (_key, value, context) => (typeof value === 'number' && context && typeof context.source === 'string'
    && String(value) !== context.source && !/[eE.]/.test(context.source) ? new ExactNumber(context.source) : value);
  try {
    return { ok: true, value: JSON.parse(text, exact) };
  } catch (_) {
    return { ok: false };
  }
}

/**
 * A line diff (longest common subsequence) of two texts, as rows of `same`, `removed`
 * (primary only) and `added` (shadow only). Long texts are compared by their first lines.
 */
export function lineDiff(primary, shadow, maxLines = 2000) {
  const a = primary.split('\n').slice(0, maxLines);
  const b = shadow.split('\n').slice(0, maxLines);
  const n = a.length;
  const m = b.length;
  const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const rows = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      rows.push(['same', a[i]]);
      i += 1;
      j += 1;
    } else if (j < m && (i === n || table[i][j + 1] >= table[i + 1][j])) {
      rows.push(['added', b[j]]);
      j += 1;
    } else {
      rows.push(['removed', a[i]]);
      i += 1;
    }
  }
  return rows;
}

/** The line diff as a block; runs of more than 6 equal lines are folded. */
export function textDiffView(primary, shadow) {
  const rows = lineDiff(primary, shadow);
  const out = [];
  let run = [];
  const flush = () => {
    if (run.length > 6) {
      out.push(...run.slice(0, 2).map(([, line]) => h('div', { class: 'line-same' }, `  ${line}`)));
      const folded = h('details', { class: 'line-fold' }, h('summary', {}, `${run.length - 4} equal lines`),
        ...run.slice(2, -2).map(([, line]) => h('div', { class: 'line-same' }, `  ${line}`)));
      out.push(folded);
      out.push(...run.slice(-2).map(([, line]) => h('div', { class: 'line-same' }, `  ${line}`)));
    } else {
      out.push(...run.map(([, line]) => h('div', { class: 'line-same' }, `  ${line}`)));
    }
    run = [];
  };
  for (const row of rows) {
    if (row[0] === 'same') {
      run.push(row);
      continue;
    }
    flush();
    const sign = row[0] === 'added' ? '+ ' : '- ';
    out.push(h('div', { class: `line-${row[0]}` }, sign + row[1]));
  }
  flush();
  return h('pre', { class: 'text-diff', tabindex: 0, 'aria-label': 'text diff: - primary, + shadow' }, out);
}

/** Both sides' headers in one table; rows that differ are marked, those the comparison counted strongly. */
export function headerDiff(primary, shadow, differences) {
  const counted = new Set(differences.filter((d) => d.kind === 'header').map((d) => d.path.toLowerCase()));
  const names = [...new Set([...Object.keys(primary), ...Object.keys(shadow)])].sort();
  const rows = names.map((name) => {
    const a = primary[name];
    const b = shadow[name];
    const differs = a !== b;
    const cls = counted.has(name) ? 'diff-hit' : differs ? 'diff-ignored' : '';
    return h('tr', { class: cls, 'data-header': name },
      h('th', { scope: 'row' }, name),
      h('td', {}, a === undefined ? h('em', {}, 'absent') : a),
      h('td', {}, b === undefined ? h('em', {}, 'absent') : b));
  });
  return h('table', { class: 'headers' },
    h('caption', {}, 'Response headers (lit: a counted difference; faint: differs, but not compared)'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'header'), h('th', { scope: 'col' }, 'primary'), h('th', { scope: 'col' }, 'shadow'))),
    h('tbody', {}, rows));
}
