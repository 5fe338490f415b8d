package dev.graft.examples.papers;

import dev.graft.compiler.HostModel;
import dev.graft.examples.sentiment.SentimentData;
import java.nio.file.Path;

/**
 * One method of the papers benchmark: how it declares, trains and saves an adapter on the sentiment task.
 * A method with a loop of its own (a calibration pass, two phases, a sequence of tasks) runs it in {@link #run}.
 */
public interface PaperMethod {
  /** The row id, for {@code --only}. */
  String id();

  /** The row's name in the table: the method and its paper. */
  String name();

  /** Trains the method and reports its row; {@code saved} is an empty folder for what the method saves. */
  PaperResult run(Context context, Path saved) throws Exception;

  /** What every row shares: the host, the data and the number of epochs. */
  record Context(HostModel host, SentimentData data, int epochs) {}
}
