import { CORE_SCHEMA, loadAll, mergeTag, YAMLException } from "js-yaml";

export { YAMLException };

/**
 * YAML 1.2's core schema, as js-yaml 4 read configurations, with the merge key (`<<: *defaults`)
 * that distribution's example configurations use. Dates stay strings (Go's yaml gives a string
 * field a string), and YAML 1.1's yes/no/on/off stay strings: a boolean is true or false.
 */
const SCHEMA = CORE_SCHEMA.withTags(mergeTag);

/** One YAML document; an empty one (nothing, or only comments) is null. */
export function parseYaml(source: string): unknown {
  const documents = loadAll(source, { schema: SCHEMA });
  if (documents.length > 1) throw new YAMLException("expected a single document, but found more");
  return documents[0] ?? null;
}
