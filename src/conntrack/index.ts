export * from './states.js';
export * from './profile.js';
export * from './model.js';
export * from './predict.js';
