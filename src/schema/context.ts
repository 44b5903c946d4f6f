import type { RequestContext } from '../services/context.js';
import type { Services } from '../services/index.js';

/** What every resolver gets: the request's context and the shared services. */
export interface GraphQLContext {
  ctx: RequestContext;
  services: Services;
}
