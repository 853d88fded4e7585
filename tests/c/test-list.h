/* test-list.h: every C test. */
#define TEST_LIST(X)                                                        \
  X(loop_empty_run) X(loop_backend_choice) X(loop_close_busy)               \
  X(loop_user_data)                                                         \
  X(nop_completes_next_turn) X(op_release_in_flight_aborts)                 \
  X(timer_order) X(timer_cancel) X(timer_zero_and_huge) X(timer_many)       \
  X(timer_wait_uses_deadline)                                               \
  X(post_cross_thread) X(post_wakes_waiting_loop)                           \
  X(wake_before_turn_ends_it)                                               \
  X(pool_work) X(pool_cancel_queued) X(pool_size_env)                       \
  X(pipe_read_write) X(pipe_read_cancel) X(pipe_cancel_after_data)          \
  X(open_fifo_cancel)                                                       \
  X(drain_cancels_everything) X(file_pread_pwrite) X(socket_ops)            \
  X(socket_fd_reuse)                                                        \
  X(bad_fd) X(buffer_registry) X(two_loops) X(many_ops_cq_overflow)          \
  X(credentials_drop) X(nonblocking_pipe_waits)                           \
  X(debug_buffers_catch_release_under_kernel) X(host_step_submits_retries) \
  X(reap_inside_reap)                                                       \
  X(uring_enter_fails)                                                      \
  X(err_errno_round_trip) X(err_linux_errnos_keep_text)                      \
  X(err_eai_mapping) X(op_handle_field)                                     \
  X(op_own_destructor) X(op_own_in_work) X(fs_open_flags)                  \
  X(fs_stat_fields) X(fs_readdir) X(fs_writefile) X(fs_path_ops)            \
  X(fs_more_ops) X(sendfile_op) X(sendfile_uncached)                                             \
  X(loop_wait_post) X(loop_wait_timer)                                      \
  X(addr_parse_format) X(udp_sendto_recvfrom) X(getaddrinfo_op)             \
  X(os_socket_calls) X(socket_preps_keep_owned)                             \
  X(share_unsupported)                                                      \
  X(op_poll) X(op_poll_out) X(os_spawn) X(os_signal_names)                 \
  X(readfile_sizes) X(readfile_failures) X(readfile_proc)                   \
  X(readfile_fifo) X(readfile_cancel) X(readfile_slots) X(readfile_tty)  \
  X(readfile_pool_then_ring) X(readfile_cancel_same_turn)                \
  X(readfile_again_after_handback) X(ptrset_against_array)               \
  X(recv_poll_first)
