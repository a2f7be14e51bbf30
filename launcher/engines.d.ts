/** The types of engines.js, for dist/cli/main.js (the build takes no JavaScript in). */
export function isSupported(version: string): boolean;
export function refusal(): string;
