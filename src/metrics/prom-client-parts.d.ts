/* The parts of prom-client that metrics.ts imports one by one: each is a CommonJS module whose
 * module.exports is the class, or the function registering one default metric. */
declare module "prom-client/lib/counter.js" {
  const Counter: typeof import("prom-client").Counter;
  export default Counter;
}
declare module "prom-client/lib/gauge.js" {
  const Gauge: typeof import("prom-client").Gauge;
  export default Gauge;
}
declare module "prom-client/lib/histogram.js" {
  const Histogram: typeof import("prom-client").Histogram;
  export default Histogram;
}
declare module "prom-client/lib/registry.js" {
  const Registry: typeof import("prom-client").Registry;
  export default Registry;
}
declare module "prom-client/lib/metrics/*.js" {
  const register: (registry: import("prom-client").Registry, config: { eventLoopMonitoringPrecision?: number }) => void;
  export default register;
}
