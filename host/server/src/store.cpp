#include "store.hpp"

#include "prompt_run.hpp"

#include <cozy/error.hpp>

#include <sqlite3.h>

namespace cozy::server {
namespace {

// A prepared statement, finalised on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw Error(std::string("queue database: ") + sqlite3_errmsg(db));
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& bind(int i, const std::string& text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, double v) {
    sqlite3_bind_double(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw Error(std::string("queue database: ") + sqlite3_errmsg(db_));
  }
  std::string text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string();
  }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  std::int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

Store::Store(const std::filesystem::path& file, std::size_t history_limit, int max_attempts)
    : history_limit_(history_limit) {
  std::filesystem::create_directories(file.parent_path());
  if (sqlite3_open(file.c_str(), &db_) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw Error("cannot open the queue database " + file.string() + ": " + message);
  }
  sqlite3_busy_timeout(db_, 5000);
  // WAL: every commit survives a crash of the process (kill -9). A queued
  // prompt is also synced to the disk before it is acknowledged (enqueue,
  // synchronous=FULL), so it survives a crash of the machine; marking it
  // running and moving it to the history are not (synchronous=NORMAL): lost
  // with the machine, the prompt runs again, as after a process crash.
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec("CREATE TABLE IF NOT EXISTS queue (sequence INTEGER PRIMARY KEY AUTOINCREMENT, prompt_id TEXT UNIQUE NOT NULL,"
       " number REAL NOT NULL, prompt TEXT NOT NULL, extra_data TEXT NOT NULL, outputs TEXT NOT NULL,"
       " running INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0)");
  exec("CREATE TABLE IF NOT EXISTS history (sequence INTEGER PRIMARY KEY AUTOINCREMENT, prompt_id TEXT UNIQUE NOT NULL,"
       " item TEXT NOT NULL)");
  // What was running when the process died runs again, unless it was the
  // cause too often.
  for (const QueuedPrompt& crashed : select("running = 1")) {
    if (crashed.attempts < max_attempts) continue;
    const std::string message = "the server stopped " + std::to_string(crashed.attempts) +
                                " times while running this prompt; it is not run again";
    finish(crashed.prompt_id, given_up_item(crashed, message, "cozy::server::Crashed", crashed.attempts));
    given_up_.push_back(crashed.prompt_id);
  }
  exec("UPDATE queue SET running = 0");
}

Store::~Store() { sqlite3_close(db_); }

void Store::exec(const char* sql) const {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw Error("queue database: " + message);
  }
}

void Store::enqueue(QueuedPrompt& prompt) {
  std::lock_guard<std::mutex> lock(mutex_);
  {
    Statement check(db_, "SELECT 1 FROM history WHERE prompt_id = ?");
    if (check.bind(1, prompt.prompt_id).step()) throw Error("prompt_id " + prompt.prompt_id + " is already in the history");
  }
  Statement insert(db_, "INSERT INTO queue (prompt_id, number, prompt, extra_data, outputs) VALUES (?, ?, ?, ?, ?)");
  insert.bind(1, prompt.prompt_id).bind(2, prompt.number).bind(3, prompt.prompt.dump()).bind(4, prompt.extra_data.dump());
  insert.bind(5, prompt.outputs.dump());
  exec("PRAGMA synchronous=FULL");
  try {
    insert.step();
  } catch (const Error&) {
    exec("PRAGMA synchronous=NORMAL");
    throw Error("prompt_id " + prompt.prompt_id + " is already queued");
  }
  exec("PRAGMA synchronous=NORMAL");
  prompt.sequence = sqlite3_last_insert_rowid(db_);
}

std::vector<QueuedPrompt> Store::select(const char* where) const {
  std::string sql = std::string("SELECT sequence, prompt_id, number, prompt, extra_data, outputs, attempts FROM queue WHERE ") + where +
                    " ORDER BY number, sequence";
  Statement s(db_, sql.c_str());
  std::vector<QueuedPrompt> out;
  while (s.step()) {
    QueuedPrompt p;
    p.sequence = s.integer(0);
    p.prompt_id = s.text(1);
    p.number = s.real(2);
    p.prompt = nlohmann::json::parse(s.text(3));
    p.extra_data = nlohmann::json::parse(s.text(4));
    p.outputs = nlohmann::json::parse(s.text(5));
    p.attempts = static_cast<int>(s.integer(6));
    out.push_back(std::move(p));
  }
  return out;
}

std::optional<QueuedPrompt> Store::start_next() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<QueuedPrompt> next = select("running = 0");
  if (next.empty()) return std::nullopt;
  Statement mark(db_, "UPDATE queue SET running = 1, attempts = attempts + 1 WHERE prompt_id = ?");
  mark.bind(1, next.front().prompt_id).step();
  ++next.front().attempts;
  return std::move(next.front());
}

bool Store::mark_running(const std::string& prompt_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement mark(db_, "UPDATE queue SET running = 1 WHERE prompt_id = ? AND running = 0");
  mark.bind(1, prompt_id).step();
  return sqlite3_changes(db_) > 0;
}

void Store::finish(const std::string& prompt_id, const nlohmann::json& history_item) {
  std::lock_guard<std::mutex> lock(mutex_);
  exec("BEGIN IMMEDIATE");
  try {
    Statement insert(db_, "INSERT OR REPLACE INTO history (prompt_id, item) VALUES (?, ?)");
    insert.bind(1, prompt_id).bind(2, history_item.dump()).step();
    Statement remove(db_, "DELETE FROM queue WHERE prompt_id = ?");
    remove.bind(1, prompt_id).step();
    if (history_limit_ > 0) {
      Statement trim(db_, "DELETE FROM history WHERE sequence NOT IN (SELECT sequence FROM history ORDER BY sequence DESC LIMIT ?)");
      trim.bind(1, static_cast<std::int64_t>(history_limit_)).step();
    }
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
}

std::vector<QueuedPrompt> Store::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return select("running = 0");
}

std::vector<QueuedPrompt> Store::running() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return select("running = 1");
}

std::size_t Store::remove_pending(const std::vector<std::string>& prompt_ids) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t removed = 0;
  for (const auto& id : prompt_ids) {
    Statement remove(db_, "DELETE FROM queue WHERE prompt_id = ? AND running = 0");
    remove.bind(1, id).step();
    removed += static_cast<std::size_t>(sqlite3_changes(db_));
  }
  return removed;
}

std::size_t Store::clear_pending() {
  std::lock_guard<std::mutex> lock(mutex_);
  exec("DELETE FROM queue WHERE running = 0");
  return static_cast<std::size_t>(sqlite3_changes(db_));
}

std::size_t Store::remaining() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement count(db_, "SELECT COUNT(*) FROM queue");
  count.step();
  return static_cast<std::size_t>(count.integer(0));
}

std::vector<std::pair<std::string, nlohmann::json>> Store::history(std::size_t max_items, std::int64_t offset) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string sql = "SELECT prompt_id, item FROM history ORDER BY sequence";
  if (offset >= 0) sql += " LIMIT " + (max_items ? std::to_string(max_items) : std::string("-1")) + " OFFSET " + std::to_string(offset);
  else if (max_items) sql = "SELECT prompt_id, item FROM (SELECT sequence, prompt_id, item FROM history ORDER BY sequence DESC LIMIT " +
                            std::to_string(max_items) + ") ORDER BY sequence";
  Statement s(db_, sql.c_str());
  std::vector<std::pair<std::string, nlohmann::json>> out;
  while (s.step()) out.emplace_back(s.text(0), nlohmann::json::parse(s.text(1)));
  return out;
}

std::optional<nlohmann::json> Store::history_item(const std::string& prompt_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Statement s(db_, "SELECT item FROM history WHERE prompt_id = ?");
  if (!s.bind(1, prompt_id).step()) return std::nullopt;
  return nlohmann::json::parse(s.text(0));
}

void Store::delete_history(const std::vector<std::string>& prompt_ids) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& id : prompt_ids) {
    Statement remove(db_, "DELETE FROM history WHERE prompt_id = ?");
    remove.bind(1, id).step();
  }
}

void Store::clear_history() {
  std::lock_guard<std::mutex> lock(mutex_);
  exec("DELETE FROM history");
}

}  // namespace cozy::server
