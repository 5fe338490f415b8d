/**
 * The source papers' methods on the sentiment example, side by side in one run ({@link
 * dev.graft.examples.papers.PapersBenchmark}): one {@link dev.graft.examples.papers.PaperMethod} per method, each
 * beside LoRA r8 trained with the same data, batches and seeds.
 */
package dev.graft.examples.papers;
