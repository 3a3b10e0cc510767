// cozy/host/events.hpp — progress events, named as ComfyUI names its
// websocket messages: execution_start, execution_cached, executing,
// progress, executed, execution_error, execution_interrupted,
// execution_success.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

namespace cozy::host {

struct Event {
  std::string type;
  nlohmann::json data;
};

/// Receives events, possibly from several worker threads at once.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void emit(const Event& event) = 0;
};

/// One JSON object a line: {"type": ..., "data": {...}} (`--progress json`).
class JsonLinesSink : public EventSink {
 public:
  explicit JsonLinesSink(std::ostream& out) : out_(out) {}
  void emit(const Event& event) override;

 private:
  std::mutex mutex_;
  std::ostream& out_;
};

/// Only what nodes log (info and above), one line each (`--progress none`).
class LogLinesSink : public EventSink {
 public:
  explicit LogLinesSink(std::ostream& out) : out_(out) {}
  void emit(const Event& event) override;

 private:
  std::mutex mutex_;
  std::ostream& out_;
};

/// A one-line progress bar redrawn in place on a terminal (`--progress bar`).
class ProgressBarSink : public EventSink {
 public:
  explicit ProgressBarSink(std::ostream& out) : out_(out) {}
  void emit(const Event& event) override;

 private:
  void draw();
  std::mutex mutex_;
  std::ostream& out_;
  std::size_t total_ = 0, done_ = 0;
  std::string current_;
  long long value_ = 0, max_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

/// Keeps every event (tests, library users).
class CollectingSink : public EventSink {
 public:
  void emit(const Event& event) override {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(event);
  }
  std::vector<Event> events() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return events_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Event> events_;
};

}  // namespace cozy::host
