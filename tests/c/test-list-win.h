/* test-list-win.h: the C tests that run on Windows (runner_win.c); the
 * others need pipes, fork, signals or /proc (docs/windows.md). */
#define TEST_LIST_WIN(X)                                                    \
  X(loop_empty_run) X(loop_close_busy) X(nop_completes_next_turn)           \
  X(loop_user_data)                                                         \
  X(timer_order) X(timer_cancel) X(timer_zero_and_huge) X(timer_many)       \
  X(timer_wait_uses_deadline)                                               \
  X(post_cross_thread) X(post_wakes_waiting_loop)                           \
  X(pool_work) X(pool_cancel_queued) X(pool_size_env)                       \
  X(addr_parse_format) X(udp_sendto_recvfrom) X(getaddrinfo_op)             \
  X(os_socket_calls) X(socket_preps_keep_owned)                             \
  X(iocp_backend_name) X(iocp_timers) X(iocp_posts_four_threads)            \
  X(iocp_loop_wait) X(iocp_file_rw) X(iocp_fs_errors)                      \
  X(iocp_fs_more) X(iocp_sendfile) X(iocp_sync_handle_on_pool)             \
  X(iocp_sync_success) X(iocp_udp) X(iocp_cancel_every_kind)                \
  X(iocp_close_pending) X(iocp_thousand_connections)                      \
  X(iocp_foreign_port) X(iocp_close_ends_poll) X(iocp_sync_file_position) \
  X(win_spawn_status_kill) X(win_spawn_all_or_nothing)                      \
  X(win_signal_names_and_routes) X(win_adopt_kinds)                       \
  X(iocp_share_spread) X(iocp_share_cancel) X(win_readfile)                \
  X(iocp_share_close_races_accept) X(iocp_share_post_fails)
