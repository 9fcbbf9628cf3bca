// Small SVG charts drawn from the API's numbers: no library, sized by CSS.
import { svg, ms } from './dom.js';

/**
 * A sparkline of `values` (one a minute, oldest first): bars of the pairs compared each
 * minute, the divergent share drawn as the darker part.
 */
export function sparkline(buckets, label) {
  const width = 120;
  const height = 24;
  const most = Math.max(1, ...buckets.map((b) => b.pairs));
  const step = width / Math.max(1, buckets.length);
  // The axis spans the whole window, so minutes without pairs (before the process started,
  // or quiet ones) read as time, not as a chart drawn off to one side.
  const bars = [svg('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: 'spark-axis' })];
  buckets.forEach((bucket, i) => {
    if (bucket.pairs === 0) return;
    const total = (bucket.pairs / most) * height;
    const diverged = (bucket.diverged / most) * height;
    const x = (i * step).toFixed(1);
    const w = Math.max(1, step - 0.5).toFixed(1);
    bars.push(svg('rect', { x, y: (height - total).toFixed(1), width: w, height: total.toFixed(1), class: 'spark-pairs' }));
    if (diverged > 0) {
      bars.push(svg('rect', { x, y: (height - diverged).toFixed(1), width: w, height: diverged.toFixed(1), class: 'spark-diverged' }));
    }
  });
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'sparkline', role: 'img', 'aria-label': label },
    svg('title', {}, label), bars);
}

const QUANTILES = [['p50', 50], ['p90', 90], ['p99', 99], ['p999', 99.9]];

/**
 * The latency distributions of primary and shadow overlaid: latency (log scale) at each
 * percentile, one line per side.
 */
export function distributions(latency) {
  const width = 360;
  const height = 160;
  const pad = { left: 56, right: 12, top: 10, bottom: 26 };
  const values = ['primary', 'shadow'].flatMap((side) => QUANTILES.map(([key]) => latency[side][key]))
    .filter((v) => v > 0);
  if (values.length === 0) return svg('svg', { viewBox: `0 0 ${width} 30`, class: 'chart' }, svg('text', { x: 4, y: 20 }, 'no latencies yet'));
  const low = Math.log10(Math.min(...values) * 0.8);
  const high = Math.log10(Math.max(...values) * 1.25);
  const y = (value) => pad.top + (1 - (Math.log10(Math.max(value, 1e-3)) - low) / Math.max(1e-9, high - low)) * (height - pad.top - pad.bottom);
  const x = (i) => pad.left + (i / (QUANTILES.length - 1)) * (width - pad.left - pad.right);
  const parts = [];
  QUANTILES.forEach(([key], i) => {
    parts.push(svg('text', { x: x(i), y: height - 8, class: 'axis', 'text-anchor': 'middle' }, key));
  });
  for (const tick of [high, (high + low) / 2, low]) {
    const value = 10 ** tick;
    parts.push(svg('text', { x: pad.left - 6, y: y(value) + 4, class: 'axis', 'text-anchor': 'end' }, ms(value)));
    parts.push(svg('line', { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value), class: 'grid' }));
  }
  for (const side of ['primary', 'shadow']) {
    const points = QUANTILES.map(([key], i) => `${x(i).toFixed(1)},${y(latency[side][key]).toFixed(1)}`).join(' ');
    parts.push(svg('polyline', { points, class: `line-${side}` }));
    QUANTILES.forEach(([key], i) => {
      parts.push(svg('circle', { cx: x(i), cy: y(latency[side][key]), r: 3, class: `dot-${side}` },
        svg('title', {}, `${side} ${key}: ${ms(latency[side][key])}`)));
    });
  }
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-label': `latency percentiles, primary against shadow` }, parts);
}

/** The delta's distribution (shadow minus primary) as one bar per percentile, signed. */
export function deltaBars(delta) {
  const width = 360;
  const height = 120;
  const pad = { left: 56, right: 12, top: 10, bottom: 26 };
  const most = Math.max(1e-3, ...QUANTILES.map(([key]) => Math.abs(delta[key])));
  const zero = pad.top + (height - pad.top - pad.bottom) / 2;
  const scale = (height - pad.top - pad.bottom) / 2 / most;
  const slot = (width - pad.left - pad.right) / QUANTILES.length;
  const parts = [svg('line', { x1: pad.left, x2: width - pad.right, y1: zero, y2: zero, class: 'grid' }),
    svg('text', { x: pad.left - 6, y: zero + 4, class: 'axis', 'text-anchor': 'end' }, '0')];
  QUANTILES.forEach(([key], i) => {
    const value = delta[key];
    const barHeight = Math.abs(value) * scale;
    const x = pad.left + i * slot + slot * 0.2;
    parts.push(svg('rect', { x, y: value >= 0 ? zero - barHeight : zero, width: slot * 0.6, height: Math.max(0.5, barHeight),
      class: value > 0 ? 'delta-slower' : 'delta-faster' }, svg('title', {}, `delta ${key}: ${value.toFixed(2)} ms`)));
    parts.push(svg('text', { x: x + slot * 0.3, y: height - 8, class: 'axis', 'text-anchor': 'middle' }, key));
    parts.push(svg('text', { x: x + slot * 0.3, y: value >= 0 ? zero - barHeight - 3 : zero + barHeight + 11, class: 'axis', 'text-anchor': 'middle' },
      `${value >= 0 ? '+' : ''}${value.toFixed(1)}`));
  });
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-label': 'latency delta, shadow minus primary, in milliseconds' }, parts);
}

/** p50 and p99 over the last hour, primary against shadow, from the history's buckets. */
export function latencyTrend(buckets) {
  const width = 360;
  const height = 120;
  const pad = { left: 56, right: 12, top: 10, bottom: 18 };
  const held = buckets.map((b, i) => ({ i, b })).filter(({ b }) => b.pairs > 0);
  if (held.length === 0) return svg('svg', { viewBox: `0 0 ${width} 30`, class: 'chart' }, svg('text', { x: 4, y: 20 }, 'no pairs in the last hour'));
  const most = Math.max(...held.flatMap(({ b }) => [b.latency_ms.primary.p99, b.latency_ms.shadow.p99]));
  const x = (i) => pad.left + (i / Math.max(1, buckets.length - 1)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - v / most) * (height - pad.top - pad.bottom);
  const parts = [svg('text', { x: pad.left - 6, y: pad.top + 4, class: 'axis', 'text-anchor': 'end' }, ms(most)),
    svg('text', { x: pad.left - 6, y: height - pad.bottom + 4, class: 'axis', 'text-anchor': 'end' }, '0'),
    svg('text', { x: pad.left, y: height - 4, class: 'axis' }, `${buckets.length} min ago`),
    svg('text', { x: width - pad.right, y: height - 4, class: 'axis', 'text-anchor': 'end' }, 'now')];
  for (const side of ['primary', 'shadow']) {
    for (const q of ['p50', 'p99']) {
      const points = held.map(({ i, b }) => `${x(i).toFixed(1)},${y(b.latency_ms[side][q]).toFixed(1)}`).join(' ');
      parts.push(svg('polyline', { points, class: `line-${side} ${q === 'p99' ? 'dashed' : ''}` }));
    }
  }
  return svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-label': 'p50 (solid) and p99 (dashed) latency per minute, primary against shadow' }, parts);
}
