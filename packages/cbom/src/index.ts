export { CbomError } from './errors.js';
export { walk, walkHtml } from './walk.js';
export {
  CBOM_VERSION,
  CONTINUITY_BOM_FORMAT,
  VERIFY_CHECKS,
  authorityView,
  continuityBom,
  inspectView,
  timelineView,
  verifyView,
} from './views.js';
export { mdEscape, renderMarkdown, renderText, shouldColor } from './render.js';
export { exportCycloneDx, materialType } from './cyclonedx.js';
export { REPORT_FORMAT, reportMarkdown, verifyReport, writeReport } from './report.js';
export { markOf, shortActor, summaryOf } from './describe.js';
export { HTML_FORMAT, liveEvent, renderHtml } from './html.js';

export type { CbomErrorCode } from './errors.js';
export type {
  CausalGraph,
  CheckStatus,
  EdgeKind,
  EdgeStatus,
  GraphActor,
  GraphEdge,
  GraphLog,
  GraphNode,
  GraphProblem,
  GraphSecret,
  GraphSubject,
  NodeChecks,
  NodeInclusion,
  NodeMark,
  NodeSource,
  SubjectKind,
} from './model.js';
export type { GraphBundle, WalkOptions, WalkResult } from './walk.js';
export type {
  AuthorityStatus,
  AuthorityTransition,
  AuthorityView,
  ContinuityBom,
  GraphInput,
  InspectView,
  TimelineEntry,
  TransitionType,
  VerifyCheck,
  VerifyCheckName,
  VerifyView,
} from './views.js';
export type { TextOptions, View } from './render.js';
export type { LiveEvent, RenderHtmlOptions } from './html.js';
export type { CycloneDxOptions, CycloneDxSpec } from './cyclonedx.js';
export type {
  ReportCheck,
  ReportDocument,
  ReportEvent,
  VerifiedReport,
  VerifyReportOptions,
  WriteReportOptions,
} from './report.js';
