/** One resource and the actions on it: a Docker token auth scope. */
export interface Access {
  /** "repository" or "registry" */
  type: string;
  name: string;
  actions: string[];
}

/** "repository:library/ubuntu:pull,push" */
export function scopeOf(access: Access): string {
  return `${access.type}:${access.name}:${access.actions.join(",")}`;
}

/**
 * Parses a scope. The name may carry host:port ("repository:reg.local:5000/app:pull"), so the
 * type is before the first ":" and the actions after the last.
 */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first <= 0 || last <= first + 1) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(",").filter(Boolean) };
}

/** Whether the grants allow every action of `need` ("*" allows them all). */
export function isGranted(grants: readonly Access[], need: Access): boolean {
  return need.actions.every((action) =>
    grants.some((g) => g.type === need.type && g.name === need.name && (g.actions.includes(action) || g.actions.includes("*"))),
  );
}

/** The challenge's scope list for what a request needs. */
export function scopeParameter(required: readonly Access[]): string {
  return required.map(scopeOf).join(" ");
}
