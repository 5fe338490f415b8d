import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A bare ONNX Runtime program, run with only the onnxruntime jar on the class path (no Graft):
 * {@code java -cp onnxruntime.jar BareRun.java model.onnx name=rows,cols:v,v,… …}. Opens the
 * model, feeds each int64 input, runs it and prints every float output as {@code output <name>
 * <values…>}.
 */
public class BareRun {
  public static void main(String[] args) throws Exception {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        OrtSession session = env.createSession(args[0], options)) {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      for (int i = 1; i < args.length; i++) {
        String[] nameRest = args[i].split("=", 2);
        String[] shapeValues = nameRest[1].split(":", 2);
        String[] dims = shapeValues[0].split(",");
        long[] shape = new long[dims.length];
        for (int d = 0; d < dims.length; d++) {
          shape[d] = Long.parseLong(dims[d]);
        }
        String[] vs = shapeValues[1].split(",");
        long[] values = new long[vs.length];
        for (int v = 0; v < vs.length; v++) {
          values[v] = Long.parseLong(vs[v]);
        }
        feeds.put(nameRest[0], OnnxTensor.createTensor(env, LongBuffer.wrap(values), shape));
      }
      System.out.println("inputs " + String.join(" ", session.getInputNames()));
      try (OrtSession.Result r = session.run(feeds)) {
        for (Map.Entry<String, ai.onnxruntime.OnnxValue> e : r) {
          FloatBuffer b = ((OnnxTensor) e.getValue()).getFloatBuffer();
          StringBuilder line = new StringBuilder("output ").append(e.getKey());
          while (b.hasRemaining()) {
            line.append(' ').append(String.format(Locale.ROOT, "%.9g", b.get()));
          }
          System.out.println(line);
        }
      }
      feeds.values().forEach(OnnxTensor::close);
    }
  }
}
