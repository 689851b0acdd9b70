// Latency recording with HdrHistogram: values in nanoseconds (3 significant digits), summaries
// in microseconds.
import { build, type Histogram } from 'hdr-histogram-js';

export interface LatencySummaryUs {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export class LatencyRecorder {
  private readonly histogram: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000_000, // 2 minutes in ns
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 64,
    useWebAssembly: false,
  });

  recordNs(ns: number): void {
    this.histogram.recordValue(Math.max(1, Math.round(ns)));
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  summaryUs(): LatencySummaryUs {
    const h = this.histogram;
    const us = (ns: number) => Math.round(ns / 100) / 10; // 0.1 µs
    if (h.totalCount === 0) return { count: 0, min: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
    return {
      count: h.totalCount,
      min: us(h.minNonZeroValue),
      mean: us(h.mean),
      p50: us(h.getValueAtPercentile(50)),
      p90: us(h.getValueAtPercentile(90)),
      p99: us(h.getValueAtPercentile(99)),
      p999: us(h.getValueAtPercentile(99.9)),
      max: us(h.maxValue),
    };
  }

  /** HdrHistogram's own percentile distribution text, values in µs. */
  distributionText(): string {
    return this.histogram.outputPercentileDistribution(5, 1000);
  }

  destroy(): void {
    this.histogram.destroy();
  }
}
