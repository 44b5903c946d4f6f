import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';

/** The model's tokenizer, loaded from its directory (tokenizer.json). */
export class Tokenizer {
  private constructor(private readonly inner: PreTrainedTokenizer) {}

  /** Loads the tokenizer of a local model directory; never touches the network. */
  static async fromDirectory(dir: string): Promise<Tokenizer> {
    env.allowLocalModels = true;
    const inner = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
    return new Tokenizer(inner);
  }

  /** Token ids the model reads for this text, special tokens (BOS) included. */
  encode(text: string): number[] {
    return this.inner.encode(text, { add_special_tokens: true });
  }

  /** Text of these ids, special tokens skipped. */
  decode(ids: readonly number[]): string {
    // No clean-up of spaces: the text must be exactly what the tokens spell.
    return this.inner.decode(ids as number[], { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }
}

/**
 * Turns a growing list of token ids into text pieces as they become final.
 * A character split across tokens (UTF-8 byte fallback) is held back until
 * complete. Decoding a small window that starts a few tokens back, and
 * emitting only the difference, keeps the spacing the tokenizer's decoder
 * would give the whole text (the same method as text-generation-inference).
 */
export class IncrementalDecoder {
  private prefixOffset: number;
  private readOffset: number;

  constructor(
    private readonly tokenizer: Pick<Tokenizer, 'decode'>,
    private readonly ids: number[],
  ) {
    this.readOffset = ids.length;
    this.prefixOffset = Math.max(0, ids.length - 6);
  }

  /** Call after pushing one id onto `ids`; returns the newly final text ('' if none yet). */
  next(): string {
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return newText.slice(prefixText.length);
    }
    return '';
  }

  /** Whatever is still held back (an incomplete character at the very end). */
  flush(): string {
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return newText.length > prefixText.length ? newText.slice(prefixText.length) : '';
  }
}

/**
 * Finds stop strings in streamed text. Text that could still become the start
 * of a stop string is withheld until it is known not to be one.
 */
export class StopMatcher {
  private buffer = '';
  private readonly maxLen: number;
  stopped = false;

  constructor(private readonly stops: readonly string[]) {
    this.maxLen = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Adds text; returns the part that is now safe to emit. Sets `stopped` when a stop string appears. */
  push(text: string): string {
    if (this.stopped) return '';
    if (this.maxLen === 0) return text;
    this.buffer += text;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.buffer.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.buffer.slice(0, cut);
      this.buffer = '';
      return out;
    }
    // Withhold the longest suffix that is a prefix of some stop string.
    let hold = 0;
    for (let len = Math.min(this.maxLen - 1, this.buffer.length); len > 0; len--) {
      const tail = this.buffer.slice(this.buffer.length - len);
      if (this.stops.some((s) => s.startsWith(tail))) {
        hold = len;
        break;
      }
    }
    const out = this.buffer.slice(0, this.buffer.length - hold);
    this.buffer = this.buffer.slice(this.buffer.length - hold);
    return out;
  }

  /** The withheld text, at the end of generation. */
  flush(): string {
    const out = this.stopped ? '' : this.buffer;
    this.buffer = '';
    return out;
  }
}
