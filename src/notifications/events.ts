import type { Descriptor } from "../registry/manifest-format.js";

/** The envelope's media type, as distribution 2.x sends it. */
export const EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json";

export type EventAction = "push" | "pull" | "mount" | "delete";

/** What an event is about: a blob or manifest (with its descriptor fields), or a deleted tag. */
export interface EventTarget {
  mediaType?: string;
  size?: number;
  digest?: string;
  /** Same as size; distribution keeps it for old listeners. */
  length?: number;
  repository: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
  references?: Descriptor[];
}

export interface RequestRecord {
  id: string;
  addr?: string;
  host?: string;
  method: string;
  useragent: string;
}

/** One event in distribution's notification format. */
export interface RegistryEvent {
  id: string;
  timestamp: string;
  action: EventAction;
  target: EventTarget;
  request: RequestRecord;
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

/** The fields a request's handler knows; id, time and source are the notifier's. */
export type EventInput = Pick<RegistryEvent, "action" | "target" | "request" | "actor">;
