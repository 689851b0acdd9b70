// The inspector's NATS subjects. They sit beside the public and peer subjects of bus/subjects.ts
// (`zistore.<cluster>.…`) but belong to observability: nothing in the protocol reads them.
export const inspectSubjects = {
  /** Where one node publishes its inspection batches. */
  node: (cluster: string, node: string) => `zistore.${cluster}.inspect.${node}`,
  /** Every node of a cluster (what the viewer subscribes to). */
  all: (cluster: string) => `zistore.${cluster}.inspect.>`,
};
