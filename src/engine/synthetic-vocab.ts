import { BYTE_TOKEN_OFFSET, type Llama2cVocab } from './llama2c.js';

// Common English words; with their prefixes they give random models a
// vocabulary that tokenizes ordinary prompts into plausibly few tokens.
const WORDS = (
  'the of and to in is was that for it with as his on be at by had are but from or have an they which one you were all ' +
  'her she there would their we him been has when who will no more if out so said what up its about than into them can ' +
  'only other time new some could these two may first then do any like my now over such our man me even most made after ' +
  'also did many off before must well back through years much where your way down should because long each just people ' +
  'how too little state good very make world still see own men work day get here between both life being under never ' +
  'same another know while last might us great old year come since against go came right used take three once upon ' +
  'house home play played ball girl boy named happy friend friends mom dad park tree big small went saw wanted loved ' +
  'looked found thought asked help smiled together dog cat bird water sun sky red blue green car toy story model token ' +
  'server request response hello thank please yes question answer number data test value system query result error ' +
  'function return string object array type name list file path user input output text word line code run start stop'
).split(' ');

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/**
 * A deterministic llama2.c-style vocabulary of exactly `size` pieces: the
 * three specials, the 256 byte tokens, every printable ASCII character, then
 * merged pieces (English words and their prefixes, then letter n-grams) until
 * full. Every merged piece's prefixes come before it, so BPE can build it,
 * and scores fall with position like a trained sentencepiece model. Any text
 * round-trips because unknown characters fall back to byte tokens.
 */
export function buildSyntheticVocab(size: number): Llama2cVocab {
  const pieces: string[] = ['<unk>', '\n<s>\n', '\n</s>\n'];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  if (size < pieces.length + 95) throw new Error(`synthetic vocabulary needs at least ${pieces.length + 95} tokens`);
  const seen = new Set<string>();
  const add = (p: string): boolean => {
    if (pieces.length >= size) return false;
    if (!seen.has(p)) {
      seen.add(p);
      pieces.push(p);
    }
    return true;
  };
  const addWithPrefixes = (p: string): boolean => {
    const chars = Array.from(p);
    for (let n = 2; n <= chars.length; n++) if (!add(chars.slice(0, n).join(''))) return false;
    return true;
  };

  for (let c = 0x20; c < 0x7f; c++) add(String.fromCharCode(c));
  add('\n');
  add('\t');
  for (const w of WORDS) {
    if (!addWithPrefixes(' ' + w) || !addWithPrefixes(w)) break;
  }
  // Letter n-grams in growing length, with and without a leading space, to
  // fill the rest; their (n-1)-gram prefixes were added one round earlier.
  let grams = Array.from(LETTERS);
  while (pieces.length < size) {
    for (const g of grams) if (!add(' ' + g) || !add(g)) break;
    if (pieces.length >= size) break;
    const next: string[] = [];
    for (const g of grams) for (const l of LETTERS) next.push(g + l);
    grams = next;
  }
  const scores = new Float32Array(size);
  // Specials and bytes score 0 like sentencepiece exports; the rest descend.
  for (let id = BYTE_TOKEN_OFFSET + 256; id < size; id++) scores[id] = -(id - (BYTE_TOKEN_OFFSET + 256));
  return { pieces, scores, maxTokenLength: Math.max(...pieces.map((p) => new TextEncoder().encode(p).length)) };
}
