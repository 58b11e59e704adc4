// KafkaClientCheck builds a Kafka consumer of the kafka-clients that Flink's
// SQL Kafka connector carries (shaded) from a properties file, as the
// connector would from a table's "properties.*" options: the JAAS
// configuration is parsed and its login module loaded and logged in, and
// the PEM truststore and keystore are read. No broker is contacted. It
// prints the login module and the user and password the JAAS configuration
// holds, for the Go test to compare.
//
// java -cp flink-sql-connector-kafka.jar:slf4j-api.jar KafkaClientCheck.java client.properties
import java.io.FileReader;
import java.util.Map;
import java.util.Properties;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.config.types.Password;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.security.JaasContext;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class KafkaClientCheck {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    try (FileReader r = new FileReader(args[0])) {
      props.load(r);
    }
    var entry = JaasContext.loadClientContext(Map.of("sasl.jaas.config", new Password(props.getProperty("sasl.jaas.config"))))
        .configurationEntries().get(0);
    System.out.println("login-module=" + entry.getLoginModuleName());
    System.out.println("username=" + entry.getOptions().get("username"));
    System.out.println("password=" + entry.getOptions().get("password"));
    props.put("bootstrap.servers", "127.0.0.1:1");
    props.put("key.deserializer", ByteArrayDeserializer.class.getName());
    props.put("value.deserializer", ByteArrayDeserializer.class.getName());
    try (var consumer = new KafkaConsumer<byte[], byte[]>(props)) {
      System.out.println("consumer=built");
    }
  }
}
