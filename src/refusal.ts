/**
 * Refusals of a configured value, shared by every layer that checks one (drivers, the etcd
 * client, the HTTP listeners): a leaf module, so that none of them depends on config/.
 */

/** A value the registry cannot serve with, named by its key path (`http.tls.key`, ...). */
export class ConfigError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * What is not there yet but may come without anyone changing the configuration: a store that
 * does not answer, a port another process holds, an address the machine does not have yet (a
 * reboot where the network or the store is late). serve exits 1 for it, so that its supervisor
 * tries again; a configuration wrong in itself exits 2, and no restart is tried.
 */
export class NotYetAvailable extends ConfigError {
  readonly transient = true;
}
