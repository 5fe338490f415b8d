package dev.graft.examples.papers;

import dev.graft.dsl.continual.Sema;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.data.Batch;
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
 * sentence has more tokens than the median of the training sentences, labels 2 (short) and 3 (long) of the
 * shared four-class head. Pools on layers 3..5 of the host (the last three, as the reference code's
 * {@code adapt_start_layer} 9 to {@code adapt_end_layer} 11 of ViT-B's twelve), adapters of 16 units (reduction
 * 24 of 384: the reference's {@code ffn_num} 16), threshold 1 (the reference's {@code exp_threshold} for its
 * domain-shift sequences, VTAB and ImageNet-A, as these sources are; at the loop's default 2, that of its
 * class-split sequences, none of these tasks expands anything, see docs/papers/sema.md); after each task the accuracy on every task so far
 * is printed, task-aware (argmax within the task's own two classes) and class-incremental (argmax over all
 * four). The row's accuracy is the mean final task-aware held-out accuracy over the four tasks; its parameters
 * every adapter value the pools hold at the end (earlier tasks' included) plus the head.
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
        .threshold(1.0).labels(4).trainer(trainer).build()) {
      for (var task : tasks.entrySet()) {
        Sema.TaskReport r = sema.learn(task.getKey(), task.getValue().train(), task.getValue().heldOut());
        steps += r.stepsPerSecond();
        seen.add(task.getKey());
        StringBuilder line = new StringBuilder();
        for (String s : seen) {
          line.append(String.format(Locale.ROOT, " %s=%.4f (class-incremental %.4f)", s,
              taskAware(sema.current(), tasks.get(s).heldOut()), sema.accuracy(tasks.get(s).heldOut())));
        }
        System.err.printf(Locale.ROOT, "sema after %s: pools %s, accuracy%s%n", task.getKey(), sema.pools(), line);
      }
      StringBuilder finals = new StringBuilder();
      double sum = 0;
      for (var task : tasks.entrySet()) {
        double a = taskAware(sema.current(), task.getValue().heldOut());
        sum += a;
        finals.append(String.format(Locale.ROOT, "%s %.4f (class-incremental %.4f), ", task.getKey(), a,
            sema.accuracy(task.getValue().heldOut())));
      }
      AdapterModel model = sema.current();
      long values = model.getParameters().stream()
          .mapToLong(p -> p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, Math::multiplyExact)).sum();
      model.saveAdapter(saved);
      return new PaperResult(name(), values, PapersBenchmark.bytes(saved), sum / tasks.size(), steps / tasks.size(),
          "final task-aware accuracy per task: " + finals + "pools on layers 3, 4, 5: " + sema.pools()
              + "; parameters count every pool's adapters (earlier ones frozen) and the head; steps/s is the tasks' mean");
    }
  }

  /**
   * Task-aware accuracy: the prediction is the larger of the two logits of the example's own task (classes 0, 1
   * for the sentiment tasks, 2, 3 for the length task), as task-incremental evaluation knows the task.
   */
  private static double taskAware(AdapterModel model, List<Example> examples) {
    List<String> names = model.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
    int correct = 0;
    for (int i = 0; i < examples.size(); i += 64) {
      List<Example> part = examples.subList(i, Math.min(examples.size(), i + 64));
      float[][] logits = model.predict(Batch.of(part, names).inputs());
      for (int r = 0; r < part.size(); r++) {
        int first = part.get(r).label() >= 2 ? 2 : 0;
        int predicted = logits[r][first + 1] > logits[r][first] ? first + 1 : first;
        correct += predicted == part.get(r).label() ? 1 : 0;
      }
    }
    return (double) correct / examples.size();
  }

  /**
   * Labels 2 (at most the median token count of the training sentences) and 3 (more), on the mixed sentences:
   * the first 800 training sentences (as many as each source task has) and every held-out one.
   */
  private static SentimentData lengthTask(SentimentData data) {
    long[] lengths = data.train().stream().mapToLong(SemaMethod::tokens).sorted().toArray();
    long median = lengths[lengths.length / 2];
    return new SentimentData(relabel(data.train().subList(0, Math.min(800, data.train().size())), median),
        relabel(data.heldOut(), median));
  }

  private static List<Example> relabel(List<Example> examples, long median) {
    return examples.stream().map(e -> new Example(e.features(), tokens(e) > median ? 3 : 2)).toList();
  }

  private static long tokens(Example e) {
    return Arrays.stream(e.features().get("attention_mask")).sum();
  }
}
