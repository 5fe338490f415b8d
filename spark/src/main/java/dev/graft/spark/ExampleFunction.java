package dev.graft.spark;

import dev.graft.runtime.data.Example;
import java.io.Serializable;

/** Turns one element of a data set into a tokenized example, on the executors. */
@FunctionalInterface
public interface ExampleFunction<T> extends Serializable {
  Example apply(T row);
}
