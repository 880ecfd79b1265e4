/**
 * A head start for a changed layer's upload. The planner thread finds, as soon as its stat check meets
 * the first difference, how many of the previous build's blocks lead this build's blob too (LayerHead);
 * they are sent from the block cache while the rest of the plan is made. The build then checks them
 * against its plan's block keys and goes on from the block where the head start stopped, or abandons the
 * upload when they differ. A one-file rebuild of a big tree then starts uploading ~0.3 s sooner.
 */
import { createHash, type Hash } from "node:crypto";
import type { Readable } from "node:stream";
import { type BlockCache, type BlockInfo, sameBlock } from "./block-cache.js";
import { TeeFeed } from "./tee-feed.js";

/** What an upload's stream is destroyed with when the build no longer wants it: not a failure. */
export class AbandonedUpload extends Error {}

/** The leading blocks of a layer's blob, sent before its plan is known. */
export class HeadStart {
  readonly feed: TeeFeed;
  /** The digest of what was sent, to go on with. */
  readonly digest: Hash = createHash("sha256");
  #size = 0;
  readonly #sent: BlockInfo[] = [];
  #stopped = false;
  readonly #sending: Promise<void>;

  constructor(cache: BlockCache, blocks: readonly BlockInfo[], tee: (content: Readable) => Promise<void>) {
    this.feed = new TeeFeed(tee);
    this.#sending = this.#send(cache, blocks);
    this.#sending.catch(() => {}); // stop() reports it
  }

  async #send(cache: BlockCache, blocks: readonly BlockInfo[]): Promise<void> {
    for (const info of blocks) {
      if (this.#stopped) return;
      // A block missing or not as recorded is left to the build, which makes it again.
      const cached = cache.readNow(info.key);
      if (!cached || !sameBlock(info, cached.info)) return;
      this.digest.update(cached.data);
      this.#size += cached.data.length;
      this.#sent.push(info);
      await this.feed.push(cached.data);
    }
  }

  /** Stop after the block being sent: the blocks sent, in order, and their bytes. Rejects when the upload failed. */
  async stop(): Promise<{ blocks: readonly BlockInfo[]; size: number }> {
    this.#stopped = true;
    await this.#sending;
    return { blocks: this.#sent, size: this.#size };
  }

  /** Stop and drop the upload: its stream is destroyed with an AbandonedUpload. */
  async abandon(why: string): Promise<void> {
    this.#stopped = true;
    await this.#sending.catch(() => {});
    await this.feed.fail(new AbandonedUpload(why));
  }
}
