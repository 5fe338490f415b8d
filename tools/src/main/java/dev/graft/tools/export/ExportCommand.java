package dev.graft.tools.export;

import static dev.graft.tools.cli.Arguments.graftFolder;
import static dev.graft.tools.cli.Arguments.graftResource;
import static dev.graft.tools.cli.Arguments.integer;
import static dev.graft.tools.cli.Arguments.value;

import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.export.ExportOptions;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Exports a compiled graft as a deployable ONNX model:
 *
 * <pre>
 * ExportCommand (--graft DIR/NAME | --resource FOLDER/NAME) [--host HOST.onnx] [--adapter DIR]
 *               --out DIR [--merged | --unmerged] [--require-merged] [--no-head]
 *               [--dylora-rank K] [--model-file NAME]
 * </pre>
 *
 * The graft's graphs and manifest ({@code NAME.infer.onnx}, {@code NAME.update.onnx}, {@code
 * NAME.merge.onnx}, {@code NAME.manifest.textproto}) come from a folder or from the class path
 * (as the annotation processor writes them beside the generated class); the adapter's trained
 * values from a PEFT adapter folder saved by {@code AdapterModel.saveAdapter}. Exit status 0 when
 * written, 1 when the export failed (the coded error is printed), 2 for bad arguments.
 */
public final class ExportCommand {
  public static final int OK = 0;
  public static final int FAILED = 1;
  public static final int USAGE = 2;

  public static final String USAGE_TEXT = String.join("\n",
      "usage: ExportCommand (--graft DIR/NAME | --resource FOLDER/NAME) [--host HOST.onnx] [--adapter DIR]",
      "                     --out DIR [--merged | --unmerged] [--require-merged] [--no-head]",
      "                     [--dylora-rank K] [--model-file NAME]",
      "  --graft DIR/NAME      the graft's graphs and manifest in folder DIR (NAME.infer.onnx, NAME.merge.onnx …)",
      "  --resource FOLDER/NAME  the same from the class path (e.g. dev/graft/examples/sentiment/SentimentLora)",
      "  --host HOST.onnx      the host model (default: the manifest's host, a file or class-path resource)",
      "  --adapter DIR         a PEFT adapter folder saved for the graft, loaded before exporting",
      "  --out DIR             the folder to write model.onnx and model.onnx.data into (replaced as a whole)",
      "  --merged              fold every linear-site adapter into the host's weights (the default)",
      "  --unmerged            the host plus the adapter graph, the adapter's weights as named inputs",
      "  --require-merged      fail (GRAFT-R050) if an adapter has no merged form",
      "  --no-head             output the host's own outputs instead of the task's (merged only)",
      "  --dylora-rank K       export DyLoRA adapters at rank K (merged only)",
      "  --model-file NAME     the model's file name (default model.onnx; its data NAME.data)");

  private ExportCommand() {}

  public static void main(String[] args) {
    int status = run(args, System.out, System.err);
    System.out.flush();
    if (status != OK) {
      System.exit(status);
    }
  }

  /** Runs the command on {@code args}; the exit status. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    String graft = null;
    String resource = null;
    Path host = null;
    Path adapter = null;
    Path target = null;
    boolean merged = true;
    ExportOptions options = ExportOptions.defaults();
    List<String> rest = new ArrayList<>(List.of(args));
    try {
      while (!rest.isEmpty()) {
        String a = rest.remove(0);
        switch (a) {
          case "--graft" -> graft = value(rest, a);
          case "--resource" -> resource = value(rest, a);
          case "--host" -> host = Path.of(value(rest, a));
          case "--adapter" -> adapter = Path.of(value(rest, a));
          case "--out" -> target = Path.of(value(rest, a));
          case "--merged" -> merged = true;
          case "--unmerged" -> merged = false;
          case "--require-merged" -> options = options.withRequireMerged(true);
          case "--no-head" -> options = options.withHead(false);
          case "--dylora-rank" -> options = options.withDyLoraRank(integer(value(rest, a), a));
          case "--model-file" -> options = options.withModelFile(value(rest, a));
          default -> throw new IllegalArgumentException("unknown argument '" + a + "'");
        }
      }
      if ((graft == null) == (resource == null)) {
        throw new IllegalArgumentException("expected one of --graft and --resource, given "
            + (graft == null ? "neither" : "both"));
      }
      if (target == null) {
        throw new IllegalArgumentException("expected --out DIR, given none");
      }
    } catch (IllegalArgumentException | GraftException e) {
      err.println("error: " + e.getMessage());
      err.println(USAGE_TEXT);
      return USAGE;
    }
    try {
      AdapterGraphs graphs = graft != null ? graftFolder(graft) : graftResource(resource);
      ModelOptions model = ModelOptions.defaults().withTraining(false).withHost(host);
      try (AdapterModel m = AdapterModel.open(graphs, model)) {
        if (adapter != null) {
          m.loadAdapter(adapter);
        }
        if (merged) {
          m.exportMerged(target, options);
        } else {
          m.exportUnmerged(target, options);
        }
      }
      out.println("wrote " + (merged ? "merged" : "unmerged") + " export of " + graphs.name() + " to "
          + target.resolve(options.modelFile()) + " and " + options.dataFile());
      return OK;
    } catch (GraftException e) {
      err.println("error: " + e.getMessage());
      return FAILED;
    }
  }




}
