export { main } from './main.js';
export { EXIT, UserError } from './errors.js';
export { tibetHome, writeFileAtomic } from './home.js';
