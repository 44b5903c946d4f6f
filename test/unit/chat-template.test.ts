import { AutoTokenizer, env } from '@huggingface/transformers';
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { plainChatPrompt, Tokenizer } from '../../src/engine/tokenizer.js';
import type { ChatMessage } from '../../src/engine/types.js';
import { needFiles } from '../helpers/models.js';
import { REPO } from '../helpers/server.js';

const SMOL = path.resolve(REPO, '../shared/models/SmolLM2-135M-Instruct');
const GPT2 = path.resolve(REPO, '../shared/models/gpt2');
const hub = needFiles(path.join(SMOL, 'tokenizer.json'), path.join(GPT2, 'tokenizer.json'));

const conversation: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello! How can I help?' },
  { role: 'user', content: 'Tell me a story about a bear.' },
];

describe('the plain chat format (models without a template)', () => {
  it('puts the system text first, then the turns, and ends with the assistant cue', () => {
    expect(plainChatPrompt(conversation)).toBe(
      'Be brief.\n\nUser: Hi\nAssistant: Hello! How can I help?\nUser: Tell me a story about a bear.\nAssistant:',
    );
    expect(plainChatPrompt([{ role: 'user', content: 'Once upon a time' }])).toBe('User: Once upon a time\nAssistant:');
  });
});

describe.skipIf(!hub.present)(hub.title('chat templates of hub tokenizers (../shared/models)'), () => {
  it("SmolLM2's ChatML renders exactly as transformers.js's apply_chat_template, ids included, and <|im_end|> ends a turn", async () => {
    const ours = await Tokenizer.fromDirectory(SMOL);
    env.allowLocalModels = true;
    const theirs = await AutoTokenizer.from_pretrained(SMOL, { local_files_only: true });
    expect(ours.hasChatTemplate).toBe(true);
    const r = ours.renderChat(conversation);
    expect(r.text).toBe(theirs.apply_chat_template(conversation, { tokenize: false, add_generation_prompt: true }));
    const ids = theirs.apply_chat_template(conversation, { tokenize: true, add_generation_prompt: true, return_tensor: false, return_dict: false });
    expect(r.ids).toEqual(ids);
    expect(r.text.endsWith('<|im_start|>assistant\n')).toBe(true);
    expect(ours.endOfTurnIds()).toContain(theirs.convert_tokens_to_ids('<|im_end|>'));
    // The first of the README's checks: the system + user conversation.
    expect(ours.renderChat(conversation.slice(0, 2)).text).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('GPT-2 has no template: the plain format, with <|endoftext|> ending generation', async () => {
    const ours = await Tokenizer.fromDirectory(GPT2);
    expect(ours.hasChatTemplate).toBe(false);
    const r = ours.renderChat(conversation);
    expect(r.text).toBe(plainChatPrompt(conversation));
    expect(r.ids).toEqual(ours.encode(r.text));
    expect(ours.endOfTurnIds()).toEqual([50256]);
  });
});
