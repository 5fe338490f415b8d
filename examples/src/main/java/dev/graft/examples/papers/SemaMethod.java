package dev.graft.examples.papers;

import dev.graft.dsl.continual.Sema;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterModel;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * SEMA (Wang et al., CVPR 2025) as a sequence of tasks: the sentiment sources amazon, imdb and yelp in turn,
 * then a fourth, derived task on the same sentences (no fourth text data set is in the build): whether a
 * sentence has more tokens than the median of the training sentences, labels 0 (short) and 1 (long). Each task
 * trains its own two-class block of the growing head ({@code TaskHead}), frozen afterwards. Pools on layers 3..5 of the host (the last three, as the reference code's
 * {@code adapt_start_layer} 9 to {@code adapt_end_layer} 11 of ViT-B's twelve), adapters of 16 units (reduction
 * 24 of 384: the reference's {@code ffn_num} 16), threshold 1 (the reference's {@code exp_threshold} for its
 * domain-shift sequences, VTAB and ImageNet-A, as these sources are; at the loop's default 2, that of its
 * class-split sequences, none of these tasks expands anything, see docs/papers/sema.md); after each task the accuracy on every task so far
 * is printed, task-aware (argmax within the task's own two classes) and class-incremental (argmax over all
 * eight). The row's accuracy is the mean final task-aware held-out accuracy over the four tasks; its parameters
 * every adapter value the pools hold at the end (earlier tasks' included) plus every task's head block; its
 * saved bytes those of {@code saveAdapter} (the pools and the last task's head block only).
 */
final class SemaMethod implements PaperMethod {
  @Override
  public String id() {
    return "sema";
  }

  @Override
  public String name() {
    return "SEMA, 4 tasks (Wang et al., CVPR 2025)";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    Map<String, SentimentData> tasks = new LinkedHashMap<>(SentimentData.bySource());
    tasks.put("length", lengthTask(context.data()));
    Trainer trainer = PapersBenchmark.trainer(context.epochs(), 2e-3f);
    List<String> seen = new ArrayList<>();
    double steps = 0;
    try (Sema sema = Sema.builder(context.host()).name("PapersSema").layers(List.of(3, 4, 5)).reduction(24)
        .threshold(1.0).trainer(trainer).build()) {
      for (var task : tasks.entrySet()) {
        Sema.TaskReport r = sema.learn(task.getKey(), task.getValue().train(), task.getValue().heldOut());
        steps += r.stepsPerSecond();
        seen.add(task.getKey());
        StringBuilder line = new StringBuilder();
        for (String s : seen) {
          line.append(String.format(Locale.ROOT, " %s=%.4f (class-incremental %.4f)", s,
              sema.taskAccuracy(s, tasks.get(s).heldOut()), sema.accuracy(s, tasks.get(s).heldOut())));
        }
        System.err.printf(Locale.ROOT, "sema after %s: pools %s, accuracy%s%n", task.getKey(), sema.pools(), line);
      }
      StringBuilder finals = new StringBuilder();
      double sum = 0;
      for (var task : tasks.entrySet()) {
        double a = sema.taskAccuracy(task.getKey(), task.getValue().heldOut());
        sum += a;
        finals.append(String.format(Locale.ROOT, "%s %.4f (class-incremental %.4f), ", task.getKey(), a,
            sema.accuracy(task.getKey(), task.getValue().heldOut())));
      }
      AdapterModel model = sema.current();
      long values = model.getParameters().stream()
          .filter(p -> p.getRole() != ParameterRole.HEAD_WEIGHT && p.getRole() != ParameterRole.HEAD_BIAS)
          .mapToLong(p -> p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, Math::multiplyExact)).sum()
          + sema.head().blocks().stream().mapToLong(b -> b.weight().length + b.bias().length).sum();
      model.saveAdapter(saved);
      return new PaperResult(name(), values, PapersBenchmark.bytes(saved), sum / tasks.size(), steps / tasks.size(),
          "final task-aware accuracy per task: " + finals + "pools on layers 3, 4, 5: " + sema.pools()
              + "; parameters count every pool's adapters (earlier ones frozen) and every task's head block; steps/s is the tasks' mean");
    }
  }

  /**
   * Labels 0 (at most the median token count of the training sentences) and 1 (more), on the mixed sentences:
   * the first 800 training sentences (as many as each source task has) and every held-out one.
   */
  private static SentimentData lengthTask(SentimentData data) {
    long[] lengths = data.train().stream().mapToLong(SemaMethod::tokens).sorted().toArray();
    long median = lengths[lengths.length / 2];
    return new SentimentData(relabel(data.train().subList(0, Math.min(800, data.train().size())), median),
        relabel(data.heldOut(), median));
  }

  private static List<Example> relabel(List<Example> examples, long median) {
    return examples.stream().map(e -> new Example(e.features(), tokens(e) > median ? 1 : 0)).toList();
  }

  private static long tokens(Example e) {
    return Arrays.stream(e.features().get("attention_mask")).sum();
  }
}
