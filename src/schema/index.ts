import { builder } from './builder.js';
import './health.js';
import './models.js';
import './chat.js';
import './datasets.js';
import './evaluations.js';
import './embeddings.js';
import './rag.js';
import './rag-answers.js';
import './metrics.js';

/** The whole GraphQL schema, built from the domain files above. */
export const schema = builder.toSchema({ sortSchema: true });
