/** Graft runtime: what the graphs are fed beside the parameters: host inputs, labels as the task asks, gates. */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.feed;
