import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import type { ChatMessage } from './types.js';

/**
 * The conversation format of a model without a chat template of its own
 * (llama2.c imports, base models): each turn on its own lines, ending with
 * the assistant's cue. Documented in the README.
 */
export function plainChatPrompt(messages: readonly ChatMessage[]): string {
  const parts: string[] = [];
  for (const m of messages) {
    if (m.role === 'system') parts.push(`${m.content}\n\n`);
    else parts.push(`${m.role === 'user' ? 'User' : 'Assistant'}: ${m.content}\n`);
  }
  return `${parts.join('')}Assistant:`;
}

/** Special tokens that end a turn in the chat formats in use; those in a model's vocabulary stop its generation. */
const END_OF_TURN_TOKENS = ['<|im_end|>', '<|eot_id|>', '<|end|>', '<end_of_turn>', '<|endoftext|>'];

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

  /** Token ids of text read as it stands: special-token text is read as special, nothing (no BOS) is added. */
  encodeRaw(text: string): number[] {
    return this.inner.encode(text, { add_special_tokens: false });
  }

  /** Whether the model has its own chat template (tokenizer_config.json `chat_template` or chat_template.jinja). */
  get hasChatTemplate(): boolean {
    return typeof this.inner.chat_template === 'string' && this.inner.chat_template.length > 0;
  }

  /**
   * The conversation as the model reads it, with the assistant's cue: the
   * model's own chat template rendered as transformers.js's
   * apply_chat_template renders it (its compiled template is cached), or the
   * plain format for a model without one. `ids` are what the engine feeds.
   */
  renderChat(messages: readonly ChatMessage[]): { text: string; ids: number[] } {
    if (!this.hasChatTemplate) {
      const text = plainChatPrompt(messages);
      return { text, ids: this.encode(text) };
    }
    const conversation = messages.map((m) => ({ role: m.role, content: m.content }));
    const text = this.inner.apply_chat_template(conversation, { tokenize: false, add_generation_prompt: true }) as string;
    // The template writes its own special tokens (BOS where it wants one): add none.
    return { text, ids: this.encodeRaw(text) };
  }

  /** Ids of the end-of-turn and end-of-text tokens in this vocabulary (the tokenizer's eos token included). */
  endOfTurnIds(): number[] {
    const names = [...END_OF_TURN_TOKENS, ...(this.inner.eos_token ? [this.inner.eos_token] : [])];
    const ids = new Set<number>();
    for (const name of names) {
      const id = this.inner.convert_tokens_to_ids(name) as number | undefined;
      if (id !== undefined && this.inner.all_special_ids.includes(id)) ids.add(id);
    }
    return [...ids];
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
