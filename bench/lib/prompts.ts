/**
 * Deterministic English-ish story prompts for the load profile: each prompt
 * is built from seeded story sentences until the model's own tokenizer says
 * it is 150..250 tokens long (BOS included, as the server counts them).
 */
import { mulberry32 } from '../../src/engine/random-weights.js';

const NAMES = ['Lily', 'Ben', 'Tom', 'Sue', 'Max', 'Mia', 'Sam', 'Anna', 'Tim', 'Lucy', 'Jack', 'Zoe'];
const ANIMALS = ['dog', 'cat', 'bird', 'bunny', 'frog', 'duck', 'bear', 'fox'];
const PLACES = ['park', 'garden', 'forest', 'beach', 'kitchen', 'school', 'farm', 'river'];
const THINGS = ['ball', 'kite', 'box', 'hat', 'apple', 'book', 'toy car', 'red balloon', 'blue cup', 'little boat'];
const ADJS = ['big', 'small', 'happy', 'shiny', 'soft', 'old', 'funny', 'brave', 'quiet', 'bright'];

const OPENING = 'Once upon a time, there was a {adj} {animal} named {name}.';
const TEMPLATES = [
  '{name} liked to play in the {place} with a {thing}.',
  'One day, {name} saw a {adj} {thing} near the {place}.',
  '{name} said, "Can we play together?"',
  'The {animal} was very {adj} and wanted to help.',
  'They ran to the {place} and looked for the {thing}.',
  '{name}\'s mom smiled and said, "Be careful and have fun."',
  'The sun was {adj}, and the sky was blue.',
  'After a while, {name} found the {thing} under a tree.',
  '{name} and the {animal} laughed and played all day.',
  'At night, {name} went home and thought about the {adj} {thing}.',
  'Then something {adj} happened.',
  'The {adj} {animal} jumped over the {thing} and ran to the {place}.',
  '{name} was sad because the {thing} was lost.',
  'A friend came and said, "I will help you find it."',
];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function sentence(r: () => number, template: string, name: string): string {
  return template
    .replaceAll('{name}', name)
    .replaceAll('{animal}', pick(r, ANIMALS))
    .replaceAll('{place}', pick(r, PLACES))
    .replaceAll('{thing}', pick(r, THINGS))
    .replaceAll('{adj}', pick(r, ADJS));
}

export interface Prompt {
  text: string;
  /** Tokens as the benchmark's tokenizer counts them (BOS included). */
  tokens: number;
  /** The token ids (for the raw baseline). */
  ids: number[];
}

export const PROMPT_MIN_TOKENS = 150;
export const PROMPT_MAX_TOKENS = 250;

/**
 * `count` prompts whose lengths spread over [min, max] tokens. `encode` is
 * the model's tokenizer (special tokens included). Deterministic for a given
 * tokenizer.
 */
export function makePrompts(
  count: number,
  encode: (text: string) => number[],
  min = PROMPT_MIN_TOKENS,
  max = PROMPT_MAX_TOKENS,
): Prompt[] {
  const out: Prompt[] = [];
  for (let i = 0; i < count; i++) {
    const r = mulberry32(1000 + i);
    // Targets spread over the range in a fixed scrambled order.
    const target = min + ((i * 37) % (max - min + 1));
    const name = pick(r, NAMES);
    const sentences = [sentence(r, OPENING, name)];
    let text = sentences.join(' ');
    let ids = encode(text);
    for (let guard = 0; ids.length < target && guard < 500; guard++) {
      sentences.push(sentence(r, pick(r, TEMPLATES), name));
      text = sentences.join(' ');
      ids = encode(text);
    }
    // Overshot the maximum: drop words from the end until it fits.
    const words = text.split(' ');
    while (ids.length > max && words.length > 1) {
      words.pop();
      text = words.join(' ');
      ids = encode(text);
    }
    if (ids.length < min || ids.length > max) {
      throw new Error(`prompt ${i}: could not reach ${min}..${max} tokens (got ${ids.length})`);
    }
    out.push({ text, tokens: ids.length, ids });
  }
  return out;
}
