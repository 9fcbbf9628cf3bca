// Building the page from data without ever parsing data as HTML: every text goes in as a
// text node, so a sample body can never become markup or script.

/** An element: h('a', {href: '#/'}, 'text', child, [more children]). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element with attributes (numbers and strings only). */
export function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child instanceof Node) element.appendChild(child);
    else if (child !== undefined && child !== null) element.appendChild(document.createTextNode(String(child)));
  }
  return element;
}

/**
 * Replaces the children of `parent`, keeping keyboard focus on the element with the same
 * `data-key` if there was one, so live updates never steal focus.
 */
export function replace(parent, ...children) {
  const focused = document.activeElement;
  const key = focused && parent.contains(focused) ? focused.dataset.key : undefined;
  parent.replaceChildren();
  append(parent, children);
  if (key !== undefined) {
    const again = parent.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

/** A percentage with one decimal. */
export function percent(ratio) {
  if (!Number.isFinite(ratio)) return '–';
  return `${(ratio * 100).toFixed(1)} %`;
}

/** Milliseconds, short. */
export function ms(value) {
  if (!Number.isFinite(value) || value <= 0) return '–';
  if (value < 10) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${value.toFixed(0)} ms`;
  return `${(value / 1000).toFixed(2)} s`;
}

/** The hash of a route's detail view. */
export function routeHash(route, shadow, field) {
  let hash = `#/route/${encodeURIComponent(route)}`;
  const query = new URLSearchParams();
  if (shadow) query.set('shadow', shadow);
  if (field) query.set('field', field);
  const text = query.toString();
  return text ? `${hash}?${text}` : hash;
}

/** The hash of a sample's permalink. */
export function sampleHash(sample) {
  return `#/sample/${encodeURIComponent(sample.route)}/${encodeURIComponent(sample.shadow)}/${encodeURIComponent(sample.request_id)}`;
}

/** What kind of field a field key names. */
export function fieldKind(field) {
  if (field === 'status') return 'status';
  if (field === 'latency') return 'latency';
  if (field.startsWith('header:')) return 'header';
  return 'body';
}
