/**
 * One platform's built image, as mutations of its base: the config edited (`created` set, the edits
 * applied), the built layers appended with their history lines, the manifest family chosen, the
 * annotations set. Every step is a pure function of the model (image/mutate.ts), so the result is a lazy
 * image nothing has read yet.
 */
import type { History, ImageConfig } from "../image/config.js";
import type { Image } from "../image/image.js";
import type { Layer } from "../image/layer.js";
import * as mutate from "../image/mutate.js";
import type { ManifestFormat } from "../media-types.js";
import { applyConfigEdits, type ConfigEdits } from "../mutate.js";

/** A layer to append and the history line that says what it was built from. */
export interface BuiltAddition {
  layer: Layer;
  createdBy: string;
}

/** What makes one platform's image from its base. */
export interface Derivation {
  edits: ConfigEdits;
  /** The `created` time of the config and of every history line. */
  created: string;
  layers: readonly BuiltAddition[];
  format: ManifestFormat;
  /** The manifest's annotations, instead of the base's (OCI only; a Docker manifest has none). */
  annotations: Record<string, string>;
}

/** The config edits and `created`, applied to a copy of the base's config (every field ocify does not set kept). */
export function editedConfig(config: ImageConfig, edits: ConfigEdits, created: string): ImageConfig {
  config.created = created;
  config.config = applyConfigEdits(config.config, edits);
  return config;
}

/** The history lines the layers add; a build that adds none says so in one line of its own. */
function additions(derivation: Derivation): mutate.Addition[] {
  const { created } = derivation;
  const line = (createdBy: string): History => ({ created, created_by: createdBy, comment: "ocify" });
  if (derivation.layers.length === 0) return [{ history: { ...line("ocify build (config only)"), empty_layer: true } }];
  return derivation.layers.map(({ layer, createdBy }) => ({ layer, history: line(createdBy) }));
}

/** The built image of one platform: `base` with its config edited, the layers appended, in `format`, annotated. */
export function deriveImage(base: Image, derivation: Derivation): Image {
  const edited = mutate.config(base, (config) => editedConfig(config, derivation.edits, derivation.created));
  const appended = mutate.append(edited, additions(derivation));
  // The base's subject named what the base refers to, not this image.
  const converted = mutate.subject(mutate.format(appended, derivation.format), undefined);
  return mutate.annotations(converted, derivation.format === "oci" ? derivation.annotations : {}, { replace: true });
}
