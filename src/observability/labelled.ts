import type { Metric, Registry } from 'prom-client';

/**
 * Counters and histograms for the request hot path, exposed through the same registry and in the
 * same Prometheus text format as prom-client's own. prom-client hashes and validates the label
 * set on every `inc`/`observe`, even through `labels()` children; these keep one plain record per
 * combination of label values (looked up by the values joined) and build the exposition only when
 * /metrics is scraped. Only for label sets known to stay small (route patterns, categories,
 * outcomes), never for client-chosen values.
 */
interface Options<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: readonly Registry[];
}

type Labels<L extends string> = Record<L, string>;

function keyOf(values: readonly string[]): string {
  return values.length === 1 ? values[0]! : values.join('\u0000');
}

function labelsOf<L extends string>(names: readonly L[], values: readonly string[]): Labels<L> {
  const labels = {} as Labels<L>;
  names.forEach((n, i) => (labels[n] = values[i] ?? ''));
  return labels;
}

export class LabelledCounter<L extends string> {
  private readonly series = new Map<string, { labels: Labels<L>; value: number }>();

  constructor(private readonly options: Options<L>) {
    const metric = {
      name: options.name,
      help: options.help,
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({
        name: options.name,
        help: options.help,
        type: 'counter',
        aggregator: 'sum',
        values: [...this.series.values()].map((s) => ({ labels: { ...s.labels }, value: s.value })),
      }),
      reset: () => this.series.clear(),
    };
    for (const r of options.registers) r.registerMetric(metric as unknown as Metric);
  }

  /** Adds `by` (default 1) to the series of these label values, given in labelNames order. */
  inc(values: readonly string[], by = 1): void {
    const key = keyOf(values);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { labels: labelsOf(this.options.labelNames, values), value: 0 };
      this.series.set(key, s);
    }
    s.value += by;
  }

  /** The current value of one series (0 when never incremented). */
  value(values: readonly string[]): number {
    return this.series.get(keyOf(values))?.value ?? 0;
  }
}

export class LabelledHistogram<L extends string> {
  private readonly series = new Map<string, { labels: Labels<L>; count: number; sum: number; buckets: number[] }>();

  constructor(private readonly options: Options<L> & { buckets: readonly number[] }) {
    const { name, help } = options;
    const metric = {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => {
        const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
        for (const s of this.series.values()) {
          let cumulative = 0;
          options.buckets.forEach((le, i) => {
            cumulative += s.buckets[i]!;
            values.push({ metricName: `${name}_bucket`, labels: { le, ...s.labels }, value: cumulative });
          });
          values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', ...s.labels }, value: s.count });
          values.push({ metricName: `${name}_sum`, labels: { ...s.labels }, value: s.sum });
          values.push({ metricName: `${name}_count`, labels: { ...s.labels }, value: s.count });
        }
        return { name, help, type: 'histogram', aggregator: 'sum', values };
      },
      reset: () => this.series.clear(),
    };
    for (const r of options.registers) r.registerMetric(metric as unknown as Metric);
  }

  /** Records one observation (`le` buckets: a value equal to a bound counts in that bucket). */
  observe(values: readonly string[], value: number): void {
    const key = keyOf(values);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { labels: labelsOf(this.options.labelNames, values), count: 0, sum: 0, buckets: new Array<number>(this.options.buckets.length).fill(0) };
      this.series.set(key, s);
    }
    s.count += 1;
    s.sum += value;
    const bounds = this.options.buckets;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        s.buckets[i]! += 1;
        return;
      }
    }
  }
}
