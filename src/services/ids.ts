import { randomBytes } from 'node:crypto';

/** A new random id with its kind as prefix (`ds_…`, `ev_…`, `be_…`): 96 bits, hex. */
export const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;
