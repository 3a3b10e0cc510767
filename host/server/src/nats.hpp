// A thin C++ face on the NATS C client (libnats), holding what Cozy's queue
// uses of it: one connection that reconnects forever, JetStream streams and
// durable pull consumers, publishes that wait for the stream's ack, and
// messages that are acknowledged by hand. Every failure throws cozy::Error
// with the client's own words.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

typedef struct __natsConnection natsConnection;
typedef struct __natsSubscription natsSubscription;
typedef struct __natsMsg natsMsg;
typedef struct __jsCtx jsCtx;

namespace cozy::server::nats {

/// One JetStream message taken from a pull consumer (or a core message).
class Message {
 public:
  explicit Message(natsMsg* message);
  ~Message();
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  std::string subject() const;
  std::string data() const;
  /// A header's value; empty when absent.
  std::string header(const char* name) const;
  /// How many times JetStream has delivered it (1 the first time).
  std::uint64_t delivered() const { return delivered_; }
  /// Its sequence number in its stream.
  std::uint64_t sequence() const { return sequence_; }

  /// Done with it: JetStream never delivers it again. ack() waits for the
  /// server to confirm; false when it did not (the message may come again).
  bool ack();
  /// Still working on it: JetStream waits another ack wait.
  bool in_progress();
  /// Give it back now, for another consumer.
  void nak();

 private:
  natsMsg* message_;
  std::uint64_t delivered_ = 0, sequence_ = 0;
};

struct StreamConfig {
  std::string name;
  std::vector<std::string> subjects;
  bool work_queue = false;                   ///< a message goes once acknowledged; else kept for max_age
  std::chrono::seconds max_age{0};           ///< 0: forever
  std::chrono::seconds duplicate_window{120};  ///< publishes with the same id inside it are dropped
  int replicas = 1;                          ///< copies on that many servers of a NATS cluster
};

struct ConsumerConfig {
  std::string stream, durable, filter_subject;
  std::chrono::milliseconds ack_wait{30000};
  std::int64_t max_deliver = -1;  ///< -1: no limit
  std::int64_t max_ack_pending = 1000;
};

/// A durable pull consumer bound by name.
class PullSubscription {
 public:
  explicit PullSubscription(natsSubscription* subscription) : subscription_(subscription) {}
  ~PullSubscription();
  PullSubscription(const PullSubscription&) = delete;
  PullSubscription& operator=(const PullSubscription&) = delete;
  /// Up to `batch` messages, waiting at most `wait` for the first; none
  /// when nothing came. Throws when the connection is closed for good.
  std::vector<std::unique_ptr<Message>> fetch(int batch, std::chrono::milliseconds wait);

 private:
  natsSubscription* subscription_;
};

/// One core subscription delivering to a callback on the client's thread.
class Subscription {
 public:
  Subscription(natsSubscription* subscription, std::unique_ptr<std::function<void(Message&)>> callback)
      : subscription_(subscription), callback_(std::move(callback)) {}
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

 private:
  natsSubscription* subscription_;
  std::unique_ptr<std::function<void(Message&)>> callback_;
};

class Connection {
 public:
  /// Connects to `url` (nats://HOST:PORT, or several, comma-separated);
  /// throws when the first connection fails. Afterwards it reconnects for
  /// ever, telling `log` when it loses and finds the server.
  Connection(const std::string& url, const std::string& name, std::function<void(const std::string&)> log);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Makes the stream, or leaves one of that name as it is.
  void ensure_stream(const StreamConfig& config);
  /// Makes the durable consumer, or updates it to `config`.
  void ensure_consumer(const ConsumerConfig& config);
  /// The ack wait and the most deliveries of a consumer; nullopt when it
  /// does not exist (yet).
  std::optional<ConsumerConfig> consumer(const std::string& stream, const std::string& durable);
  /// Binds to an existing durable pull consumer.
  std::unique_ptr<PullSubscription> pull(const ConsumerConfig& consumer);

  /// Publishes into a stream and waits for the stream's ack; `id` (if not
  /// empty) makes a second publish of the same id inside the stream's
  /// duplicate window a no-op. Retries until `give_up`, then throws.
  void publish(const std::string& subject, const std::string& data, const std::string& id = "",
               const std::map<std::string, std::string>& headers = {},
               std::chrono::milliseconds give_up = std::chrono::milliseconds(60000));
  /// A core (fire and forget) message.
  void send(const std::string& subject, const std::string& data);
  /// The data of the last message on `subject` in `stream`; nullopt when there is none.
  std::optional<std::string> last_message(const std::string& stream, const std::string& subject);
  /// Removes one message from a stream (false if it was gone).
  bool remove(const std::string& stream, std::uint64_t sequence);
  /// Delivers each message on `subject` (wildcards allowed) to `callback`,
  /// on the client's own thread: it must not block.
  std::unique_ptr<Subscription> subscribe(const std::string& subject, std::function<void(Message&)> callback);
  /// The largest message the server takes.
  std::int64_t max_payload() const;
  /// Sends what is buffered, waiting at most `timeout`; false if it could not.
  bool flush(std::chrono::milliseconds timeout);

 private:
  natsConnection* connection_ = nullptr;
  jsCtx* jetstream_ = nullptr;
  std::unique_ptr<std::function<void(const std::string&)>> log_;
  std::atomic<bool> closing_{false};
  std::mutex closed_mutex_;
  std::condition_variable closed_cv_;
  bool closed_ = false;
};

/// A NATS subject token for any text (prompt ids may hold dots or spaces): its bytes in hex.
std::string subject_token(const std::string& text);

}  // namespace cozy::server::nats
