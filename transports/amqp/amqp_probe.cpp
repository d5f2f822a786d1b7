// SPDX-License-Identifier: MIT
//
// The probe of both AMQP plugins (amqp_probe.hpp).
#include "amqp_probe.hpp"

#include <algorithm>

namespace switchyard::amqp {

std::string urlWithoutPassword(const Settings &s) {
  std::string u = s.redacted_url;
  if (auto at = u.find(":***@"); at != std::string::npos) {
    u.erase(at, 4);
  }
  return u;
}

Prober::Prober(const Settings &s, ProbeReport &report, std::chrono::milliseconds timeout)
    : settings_(s),
      report_(report),
      deadline_(std::chrono::steady_clock::now() + timeout),
      where_(urlWithoutPassword(s)) {}

double Prober::leftSeconds() const {
  auto left = std::chrono::duration<double>(deadline_ - std::chrono::steady_clock::now()).count();
  return std::max(left, 0.05);
}

bool Prober::connect() {
  // Every node of a url list is tried and reported; the passive checks run on the first
  // one that works.
  std::size_t n = std::max<std::size_t>(settings_.nodes.size(), 1);
  for (std::size_t i = 0; i < n; ++i) {
    if (!settings_.nodes.empty()) {
      settings_.useNode(i);
    }
    if (conn_.isOpen()) {
      Connection other;
      reportNode(other);
      other.close();
    } else if (reportNode(conn_)) {
      where_ = urlWithoutPassword(settings_);
    }
  }
  return conn_.isOpen();
}

bool Prober::reportNode(Connection &conn) {
  std::string where = urlWithoutPassword(settings_);
  ConnectError err;
  double budget = std::min(leftSeconds(), settings_.connect_timeout);
  if (!conn.open(static_cast<const Settings &>(settings_), err, budget)) {
    std::string fix = err.fix;
    if (err.kind == Failure::Transient && fix.empty()) {
      fix = "check that the broker runs and that host and port are right";
    }
    report_.result(where, Status::error(fix.empty() ? err.message : err.message + "; fix: " + fix));
    return false;
  }
  conn.setRpcTimeout(leftSeconds());
  std::string why;
  if (&conn == &conn_ ? !openChannel(why) : !probeChannel(conn, why)) {
    report_.result(where, Status::error(why));
    conn.drop();
    return false;
  }
  report_.result(where, Status::ok());
  return true;
}

bool Prober::probeChannel(Connection &conn, std::string &why) {
  amqp_channel_open(conn.state(), 1);
  auto r = amqp_get_rpc_reply(conn.state());
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    why = "channel.open: " + describe(r);
    return false;
  }
  return true;
}

bool Prober::openChannel(std::string &why) {
  channel_ = static_cast<amqp_channel_t>(channel_ + 1);
  amqp_channel_open(conn_.state(), channel_);
  auto r = amqp_get_rpc_reply(conn_.state());
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    why = "channel.open: " + describe(r);
    return false;
  }
  return true;
}

int Prober::passive(bool is_queue, const std::string &name, std::string &why) {
  if (!conn_.isOpen()) {
    why = "the connection was lost";
    return -1;
  }
  conn_.setRpcTimeout(leftSeconds());
  auto st = conn_.state();
  if (is_queue) {
    amqp_queue_declare(st, channel_, amqp_cstring_bytes(name.c_str()), 1, 0, 0, 0, amqp_empty_table);
  } else {
    amqp_exchange_declare(st, channel_, amqp_cstring_bytes(name.c_str()), amqp_cstring_bytes("topic"), 1, 0, 0, 0,
                          amqp_empty_table);
  }
  auto r = amqp_get_rpc_reply(st);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    return 0;
  }
  why = describe(r);
  int code = replyCode(r);
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    // The broker closed the channel over the missing entity: confirm, and go on with a new one.
    sendChannelCloseOk(st, channel_);
    std::string reopen;
    if (!openChannel(reopen)) {
      conn_.drop();
    }
    return code;
  }
  conn_.drop();
  return code > 0 ? code : -1;
}

void Prober::exchange(const std::string &name, bool declared_at_start, const std::string &fix) {
  std::string what = fmt::format("exchange '{}' on {}", name, where_);
  std::string why;
  int code = passive(false, name, why);
  if (code == 0) {
    report_.result(what, Status::ok());
  } else if (code == 404 && declared_at_start) {
    report_.result(what + " (absent: start-up declares it)", Status::ok());
  } else if (code == 404) {
    report_.result(what, Status::error("no such exchange (" + why + "); fix: " + fix));
  } else if (code == 403) {
    report_.result(what, Status::error(why + "; fix: grant the user read or write permission on it "
                                             "(rabbitmqctl set_permissions)"));
  } else {
    report_.result(what, Status::error(why));
  }
}

void Prober::queue(const std::string &name, bool declared_at_start, const std::string &fix) {
  std::string what = fmt::format("queue '{}' on {}", name, where_);
  std::string why;
  int code = passive(true, name, why);
  if (code == 0) {
    report_.result(what, Status::ok());
  } else if (code == 404 && declared_at_start) {
    report_.result(what + " (absent: start-up declares it)", Status::ok());
  } else if (code == 404) {
    report_.result(what, Status::error("no such queue (" + why + "); fix: " + fix));
  } else if (code == 405) {
    report_.result(what, Status::error(why + "; fix: another connection holds it exclusively: use another queue "
                                             "name or stop that consumer"));
  } else if (code == 403) {
    report_.result(what, Status::error(why + "; fix: grant the user permission on it (rabbitmqctl set_permissions)"));
  } else {
    report_.result(what, Status::error(why));
  }
}

}  // namespace switchyard::amqp
