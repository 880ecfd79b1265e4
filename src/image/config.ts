/** The image configuration (image-spec config.md); field names follow the spec exactly. */
import { InvalidImageError } from "../errors.js";
import type { Platform } from "./descriptor.js";

/** Defaults for a container run from the image. */
export interface ExecutionConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  [key: string]: unknown;
}

/** One history entry. */
export interface History {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The image config JSON. Unknown fields of a base config are kept as they are. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
  config?: ExecutionConfig;
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: History[];
  [key: string]: unknown;
}

/** Parse config bytes; throws InvalidImageError naming `what`. */
export function parseImageConfig(bytes: Buffer, what = "image config"): ImageConfig {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new InvalidImageError(`${what} is not valid JSON`, { cause: error });
  }
  const config = json as Partial<ImageConfig> | null;
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new InvalidImageError(`${what} is not a JSON object`);
  }
  if (!config.rootfs || !Array.isArray(config.rootfs.diff_ids)) {
    throw new InvalidImageError(`${what} has no rootfs.diff_ids`);
  }
  return config as ImageConfig;
}

/** A new config for `scratch`: no layers, the given platform. */
export function emptyConfig(platform: Platform): ImageConfig {
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    config: {},
    rootfs: { type: "layers", diff_ids: [] },
    history: [],
  };
  if (platform.variant) config.variant = platform.variant;
  return config;
}
