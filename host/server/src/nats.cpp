#include "nats.hpp"

#include <cozy/error.hpp>

#include <nats/nats.h>

#include <thread>

namespace cozy::server::nats {

namespace {

std::string last_error(natsStatus status) {
  const char* text = nats_GetLastError(nullptr);
  return text && *text ? text : natsStatus_GetText(status);
}

void check(natsStatus status, const std::string& what) {
  if (status != NATS_OK) throw Error(what + ": " + last_error(status));
}

std::int64_t nanoseconds(std::chrono::nanoseconds d) { return static_cast<std::int64_t>(d.count()); }

}  // namespace

// ------------------------------------------------------------ Message

Message::Message(natsMsg* message) : message_(message) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, message_) == NATS_OK && meta) {
    delivered_ = meta->NumDelivered;
    sequence_ = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
  } else {
    nats_GetLastError(nullptr);  // a core message has none
  }
}

Message::~Message() { natsMsg_Destroy(message_); }

std::string Message::subject() const { return natsMsg_GetSubject(message_); }

std::string Message::data() const {
  const char* data = natsMsg_GetData(message_);
  return data ? std::string(data, static_cast<std::size_t>(natsMsg_GetDataLength(message_))) : std::string();
}

std::string Message::header(const char* name) const {
  const char* value = nullptr;
  if (natsMsgHeader_Get(message_, name, &value) != NATS_OK || !value) return "";
  return value;
}

bool Message::ack() {
  jsOptions options;
  jsOptions_Init(&options);
  options.Wait = 5000;
  return natsMsg_AckSync(message_, &options, nullptr) == NATS_OK;
}

bool Message::in_progress() { return natsMsg_InProgress(message_, nullptr) == NATS_OK; }

void Message::nak() { natsMsg_Nak(message_, nullptr); }

// ------------------------------------------------------------ subscriptions

PullSubscription::~PullSubscription() { natsSubscription_Destroy(subscription_); }

std::vector<std::unique_ptr<Message>> PullSubscription::fetch(int batch, std::chrono::milliseconds wait) {
  natsMsgList list{nullptr, 0};
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = natsSubscription_Fetch(&list, subscription_, batch, wait.count(), &code);
  std::vector<std::unique_ptr<Message>> messages;
  if (status == NATS_OK) {
    for (int i = 0; i < list.Count; ++i) {
      messages.push_back(std::make_unique<Message>(list.Msgs[i]));
      list.Msgs[i] = nullptr;
    }
  }
  natsMsgList_Destroy(&list);
  if (status == NATS_OK || status == NATS_TIMEOUT) return messages;
  if (status == NATS_CONNECTION_CLOSED || status == NATS_INVALID_SUBSCRIPTION)
    throw Error("the queue's connection is closed: " + last_error(status));
  // Disconnected for a moment (the client reconnects): nothing this time.
  nats_GetLastError(nullptr);
  std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(250)));
  return messages;
}

Subscription::~Subscription() {
  // Drained: the callback is not running, and will not, once this returns.
  if (natsSubscription_Drain(subscription_) == NATS_OK) natsSubscription_WaitForDrainCompletion(subscription_, 5000);
  else natsSubscription_Unsubscribe(subscription_);
  nats_GetLastError(nullptr);
  natsSubscription_Destroy(subscription_);
}

// ------------------------------------------------------------ Connection

Connection::Connection(const std::string& url, const std::string& name, std::function<void(const std::string&)> log)
    : log_(std::make_unique<std::function<void(const std::string&)>>(std::move(log))) {
  natsOptions* options = nullptr;
  check(natsOptions_Create(&options), "NATS options");
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> owned(options, natsOptions_Destroy);
  // Several servers (a cluster): comma-separated; the client tries each.
  std::vector<std::string> servers;
  for (std::size_t start = 0; start <= url.size();) {
    std::size_t end = std::min(url.find(',', start), url.size());
    if (end > start) servers.push_back(url.substr(start, end - start));
    start = end + 1;
  }
  std::vector<const char*> pointers;
  for (const auto& server : servers) pointers.push_back(server.c_str());
  check(natsOptions_SetServers(options, pointers.data(), static_cast<int>(pointers.size())),
        "the queue's address " + url);
  natsOptions_SetName(options, name.c_str());
  natsOptions_SetMaxReconnect(options, -1);  // for ever
  natsOptions_SetReconnectWait(options, 250);
  natsOptions_SetReconnectBufSize(options, 64 << 20);  // what is published while away is sent on return
  natsOptions_SetTimeout(options, 5000);
  natsOptions_SetDisconnectedCB(
      options,
      [](natsConnection*, void* self) {
        auto* connection = static_cast<Connection*>(self);
        if (!connection->closing_) (*connection->log_)("lost the queue; reconnecting");
      },
      this);
  natsOptions_SetReconnectedCB(
      options,
      [](natsConnection*, void* self) {
        auto* connection = static_cast<Connection*>(self);
        if (!connection->closing_) (*connection->log_)("reconnected to the queue");
      },
      this);
  // The last callback: after it the client's thread touches nothing of ours.
  natsOptions_SetClosedCB(
      options,
      [](natsConnection*, void* self) {
        auto* connection = static_cast<Connection*>(self);
        std::lock_guard<std::mutex> lock(connection->closed_mutex_);
        connection->closed_ = true;
        connection->closed_cv_.notify_all();
      },
      this);
  natsStatus status = natsConnection_Connect(&connection_, options);
  if (status != NATS_OK) throw Error("cannot reach the queue at " + url + ": " + last_error(status));
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = 10000;
  check(natsConnection_JetStream(&jetstream_, connection_, &js_options), "JetStream at " + url);
}

Connection::~Connection() {
  closing_ = true;
  jsCtx_Destroy(jetstream_);
  if (connection_) {
    natsConnection_Close(connection_);
    // The client calls back on a thread of its own, after Close returns:
    // wait for the closed callback before this object goes.
    std::unique_lock<std::mutex> lock(closed_mutex_);
    closed_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return closed_; });
    lock.unlock();
    natsConnection_Destroy(connection_);
  }
}

void Connection::ensure_stream(const StreamConfig& config) {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetStreamInfo(&info, jetstream_, config.name.c_str(), nullptr, &code);
  if (status == NATS_OK) {
    jsStreamInfo_Destroy(info);
    return;
  }
  if (status != NATS_NOT_FOUND) check(status, "the queue's stream " + config.name);
  nats_GetLastError(nullptr);
  jsStreamConfig stream;
  jsStreamConfig_Init(&stream);
  stream.Name = config.name.c_str();
  std::vector<const char*> subjects;
  for (const auto& s : config.subjects) subjects.push_back(s.c_str());
  stream.Subjects = subjects.data();
  stream.SubjectsLen = static_cast<int>(subjects.size());
  stream.Retention = config.work_queue ? js_WorkQueuePolicy : js_LimitsPolicy;
  stream.Storage = js_FileStorage;
  stream.MaxAge = nanoseconds(config.max_age);
  stream.Duplicates = nanoseconds(config.duplicate_window);
  stream.AllowDirect = true;
  stream.Replicas = config.replicas;
  status = js_AddStream(&info, jetstream_, &stream, nullptr, &code);
  if (status == NATS_OK) jsStreamInfo_Destroy(info);
  else if (code != JSStreamNameExistErr) check(status, "cannot make the queue's stream " + config.name);
}

void Connection::ensure_consumer(const ConsumerConfig& config) {
  jsConsumerConfig consumer;
  jsConsumerConfig_Init(&consumer);
  consumer.Durable = config.durable.c_str();
  consumer.FilterSubject = config.filter_subject.empty() ? nullptr : config.filter_subject.c_str();
  consumer.AckPolicy = js_AckExplicit;
  consumer.DeliverPolicy = js_DeliverAll;
  consumer.AckWait = nanoseconds(config.ack_wait);
  consumer.MaxDeliver = config.max_deliver;
  consumer.MaxAckPending = config.max_ack_pending;
  jsConsumerInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_AddConsumer(&info, jetstream_, config.stream.c_str(), &consumer, nullptr, &code);
  if (status != NATS_OK) {  // it exists with other settings: take this server's
    nats_GetLastError(nullptr);
    status = js_UpdateConsumer(&info, jetstream_, config.stream.c_str(), &consumer, nullptr, &code);
  }
  check(status, "cannot make the queue's consumer " + config.durable);
  jsConsumerInfo_Destroy(info);
}

std::optional<ConsumerConfig> Connection::consumer(const std::string& stream, const std::string& durable) {
  jsConsumerInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetConsumerInfo(&info, jetstream_, stream.c_str(), durable.c_str(), nullptr, &code);
  if (status == NATS_NOT_FOUND || code == JSStreamNotFoundErr || code == JSConsumerNotFoundErr) {
    nats_GetLastError(nullptr);
    return std::nullopt;
  }
  check(status, "the queue's consumer " + durable);
  ConsumerConfig config;
  config.stream = stream;
  config.durable = durable;
  config.ack_wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds(info->Config->AckWait));
  config.max_deliver = info->Config->MaxDeliver;
  if (info->Config->FilterSubject) config.filter_subject = info->Config->FilterSubject;
  jsConsumerInfo_Destroy(info);
  return config;
}

std::unique_ptr<PullSubscription> Connection::pull(const ConsumerConfig& consumer) {
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = consumer.stream.c_str();
  options.Consumer = consumer.durable.c_str();
  natsSubscription* subscription = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  check(js_PullSubscribe(&subscription, jetstream_, consumer.filter_subject.c_str(), consumer.durable.c_str(), nullptr,
                         &options, &code),
        "cannot take from the queue's consumer " + consumer.durable);
  return std::make_unique<PullSubscription>(subscription);
}

void Connection::publish(const std::string& subject, const std::string& data, const std::string& id,
                         const std::map<std::string, std::string>& headers, std::chrono::milliseconds give_up) {
  const auto deadline = std::chrono::steady_clock::now() + give_up;
  for (;;) {
    natsMsg* message = nullptr;
    check(natsMsg_Create(&message, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size())), "a message");
    for (const auto& [name, value] : headers) natsMsgHeader_Set(message, name.c_str(), value.c_str());
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = id.empty() ? nullptr : id.c_str();
    options.MaxWait = 5000;
    jsPubAck* ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus status = js_PublishMsg(&ack, jetstream_, message, &options, &code);
    natsMsg_Destroy(message);
    jsPubAck_Destroy(ack);
    if (status == NATS_OK) return;
    const std::string why = last_error(status);
    // No ack (the server is away, or restarting): the same id again is safe.
    if (std::chrono::steady_clock::now() >= deadline || status == NATS_CONNECTION_CLOSED)
      throw Error("cannot publish to the queue (" + subject + "): " + why);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

void Connection::send(const std::string& subject, const std::string& data) {
  natsConnection_Publish(connection_, subject.c_str(), data.data(), static_cast<int>(data.size()));
}

std::optional<std::string> Connection::last_message(const std::string& stream, const std::string& subject) {
  natsMsg* message = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetLastMsg(&message, jetstream_, stream.c_str(), subject.c_str(), nullptr, &code);
  if (status == NATS_NOT_FOUND) {
    nats_GetLastError(nullptr);
    return std::nullopt;
  }
  check(status, "the queue's stream " + stream);
  Message owned(message);
  return owned.data();
}

bool Connection::remove(const std::string& stream, std::uint64_t sequence) {
  jsErrCode code = static_cast<jsErrCode>(0);
  const bool removed = js_DeleteMsg(jetstream_, stream.c_str(), sequence, nullptr, &code) == NATS_OK;
  if (!removed) nats_GetLastError(nullptr);
  return removed;
}

std::unique_ptr<Subscription> Connection::subscribe(const std::string& subject, std::function<void(Message&)> callback) {
  auto owned = std::make_unique<std::function<void(Message&)>>(std::move(callback));
  natsSubscription* subscription = nullptr;
  check(natsConnection_Subscribe(
            &subscription, connection_, subject.c_str(),
            [](natsConnection*, natsSubscription*, natsMsg* raw, void* closure) {
              Message message(raw);
              try {  // nothing may be thrown into the C library
                (*static_cast<std::function<void(Message&)>*>(closure))(message);
              } catch (...) {
              }
            },
            owned.get()),
        "cannot subscribe to " + subject);
  return std::make_unique<Subscription>(subscription, std::move(owned));
}

std::int64_t Connection::max_payload() const { return natsConnection_GetMaxPayload(connection_); }

bool Connection::flush(std::chrono::milliseconds timeout) {
  return natsConnection_FlushTimeout(connection_, timeout.count()) == NATS_OK;
}

std::string subject_token(const std::string& text) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char c : text) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace cozy::server::nats
