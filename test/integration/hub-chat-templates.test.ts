import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tokenizer } from '../../src/engine/tokenizer.js';
import type { ChatMessage } from '../../src/engine/types.js';
import { needFiles, QWEN25_SOURCE, SMOLLM2_SOURCE } from '../helpers/models.js';

env.allowRemoteModels = false;
env.allowLocalModels = true;

/** Conversations every template is checked on: with and without a system prompt, one and several turns, a late system message. */
const CASES: Record<string, ChatMessage[]> = {
  'one user turn, no system message (the template default)': [{ role: 'user', content: 'Hi' }],
  'system + user': [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
  ],
  'multi-turn with a system prompt': [
    { role: 'system', content: 'You answer in French.' },
    { role: 'user', content: 'What is the capital of Italy?' },
    { role: 'assistant', content: 'Rome.' },
    { role: 'user', content: 'And of Spain?\nOne word, please.' },
  ],
  'multi-turn without a system prompt': [
    { role: 'user', content: 'Tell me a joke.' },
    { role: 'assistant', content: 'Why did the bear cross the road?' },
    { role: 'user', content: 'Why?' },
  ],
  'a system message after the first turn': [
    { role: 'user', content: 'Hi' },
    { role: 'system', content: 'From now on, be formal.' },
    { role: 'user', content: 'How are you?' },
  ],
  'unicode and template-like text in content': [{ role: 'user', content: 'Ünïcödé 🐻 {{ not a tag }} {% raw %} <|im_end|>?' }],
};

/** Our rendering (what the engine feeds) equals transformers.js's apply_chat_template on the same tokenizer directory, text and ids. */
function expectSameRendering(ours: Tokenizer, theirs: PreTrainedTokenizer, messages: ChatMessage[], label: string): string {
  const r = ours.renderChat(messages);
  const text = theirs.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true }) as string;
  expect(r.text, label).toBe(text);
  const ids = theirs.apply_chat_template(messages, { tokenize: true, add_generation_prompt: true, return_tensor: false, return_dict: false });
  expect(r.ids, label).toEqual(ids);
  return r.text;
}

const smol = needFiles(path.join(SMOLLM2_SOURCE, 'tokenizer.json'), path.join(SMOLLM2_SOURCE, 'tokenizer_config.json'));
const qwen = needFiles(path.join(QWEN25_SOURCE, 'tokenizer_config.json'), path.join(SMOLLM2_SOURCE, 'tokenizer.json'));

describe.skipIf(!smol.present)(smol.title("SmolLM2-135M-Instruct's ChatML template"), () => {
  let ours: Tokenizer;
  let theirs: PreTrainedTokenizer;
  beforeAll(async () => {
    ours = await Tokenizer.fromDirectory(SMOLLM2_SOURCE);
    theirs = await AutoTokenizer.from_pretrained(SMOLLM2_SOURCE, { local_files_only: true });
  });

  it.each(Object.entries(CASES))('renders %s exactly as transformers.js does', (label, messages) => {
    const text = expectSameRendering(ours, theirs, messages, label);
    expect(text.endsWith('<|im_start|>assistant\n')).toBe(true);
  });

  it("puts SmolLM's own system prompt first when the conversation has none", () => {
    expect(ours.renderChat(CASES['one user turn, no system message (the template default)']!).text).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });
});

// Qwen2.5's folder has its template but no tokenizer.json (too large to keep): its tokenizer_config.json
// beside SmolLM2's tokenizer.json (same byte-level BPE family, and <|im_start|>/<|im_end|> are special
// tokens there too) is a tokenizer directory whose template is Qwen's. The ids are SmolLM2's vocabulary;
// what is checked is that both sides render and read Qwen's template the same way.
describe.skipIf(!qwen.present)(qwen.title("Qwen2.5-0.5B-Instruct's template (tool-aware, default system prompt)"), () => {
  let dir: string;
  let ours: Tokenizer;
  let theirs: PreTrainedTokenizer;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qwen-template-'));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), fs.readFileSync(path.join(SMOLLM2_SOURCE, 'tokenizer.json')));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), fs.readFileSync(path.join(QWEN25_SOURCE, 'tokenizer_config.json')));
    ours = await Tokenizer.fromDirectory(dir);
    theirs = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads the template from tokenizer_config.json', () => {
    const template = (JSON.parse(fs.readFileSync(path.join(QWEN25_SOURCE, 'tokenizer_config.json'), 'utf8')) as { chat_template: string }).chat_template;
    expect(ours.hasChatTemplate).toBe(true);
    expect(theirs.chat_template).toBe(template);
  });

  it.each(Object.entries(CASES))('renders %s exactly as transformers.js does', (label, messages) => {
    const text = expectSameRendering(ours, theirs, messages, label);
    expect(text.endsWith('<|im_start|>assistant\n')).toBe(true);
  });

  it("puts Qwen's default system prompt first when the conversation has none, and keeps a given one", () => {
    expect(ours.renderChat(CASES['one user turn, no system message (the template default)']!).text).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(ours.renderChat(CASES['system + user']!).text).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    // A late system message is its own turn; the default system prompt still opens the conversation.
    expect(ours.renderChat(CASES['a system message after the first turn']!).text).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nHi<|im_end|>\n<|im_start|>system\nFrom now on, be formal.<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('<|im_end|> is its end-of-turn token', () => {
    expect(ours.endOfTurnIds()).toContain(theirs.convert_tokens_to_ids('<|im_end|>'));
  });
});
