// Validate Continue config.yaml files with Continue's own package (@continuedev/config-yaml):
// its parser (the zod schema Continue loads a config with), its validator (the warnings it shows),
// and one check of ours: zod drops keys it does not know, so a key that parsing removed is an
// error here (a misspelt option would otherwise pass silently).
// Usage: node validate.mjs FILE...; prints one JSON line per file; exit 1 if any is invalid.
import { readFileSync } from "node:fs";
import YAML from "yaml";
import { parseConfigYaml, validateConfigYaml } from "@continuedev/config-yaml";

function dropped(input, parsed, path = "") {
  if (input === null || typeof input !== "object") return [];
  if (parsed === null || typeof parsed !== "object") return [path || "."];
  return Object.keys(input).flatMap((key) => {
    const where = Array.isArray(input) ? `${path}[${key}]` : `${path}.${key}`;
    return key in parsed ? dropped(input[key], parsed[key], where) : [where];
  });
}

let failed = false;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf-8");
  const result = { file, ok: false, errors: [], warnings: [] };
  try {
    const parsed = parseConfigYaml(text);
    for (const issue of validateConfigYaml(parsed)) {
      (issue.fatal ? result.errors : result.warnings).push(issue.message);
    }
    for (const key of dropped(YAML.parse(text), parsed)) {
      result.errors.push(`unknown key ${key} (dropped by Continue's schema)`);
    }
    result.models = (parsed.models || []).map((m) => ({ name: m.name, roles: m.roles }));
  } catch (error) {
    result.errors.push(error.message);
  }
  result.ok = result.errors.length === 0;
  failed ||= !result.ok;
  console.log(JSON.stringify(result));
}
process.exit(failed ? 1 : 0);
