// The task console: a client of the public API (/v1/tasks) with the operator's API key, nothing more.
// Plain browser JavaScript with no build step; every value from the API is written as text, never as HTML.
'use strict';

const KEY_STORAGE = 'ket-console-api-key';
const TERMINAL = ['succeed', 'failed', 'canceled'];
const LIST_REFRESH_MS = 3000;
const DETAIL_REFRESH_MS = 1000;
const PAGE_SIZE = 50;

const $ = (id) => document.getElementById(id);
const state = { apiKey: sessionStorage.getItem(KEY_STORAGE) || '', filters: {}, nextCursor: null, selectedId: null, detailStatus: null, timers: [] };

class ApiError extends Error {}

/** One API call; problem+json answers become an ApiError naming the fields at fault. */
async function api(method, path) {
  const response = await fetch(path, { method, headers: { authorization: `Bearer ${state.apiKey}`, accept: 'application/json' } });
  const body = await response.json().catch(() => null);
  if (response.ok) return body;
  const fields = (body && body.errors ? body.errors : []).map((error) => `${error.path}: ${error.message}`);
  const summary = body ? body.detail || body.title : `HTTP ${response.status}`;
  throw new ApiError(fields.length ? `${summary} (${fields.join('; ')})` : summary);
}

function say(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text == null ? '' : String(text);
  row.appendChild(td);
  return td;
}

function statusBadge(element, status) {
  element.textContent = status;
  element.dataset.status = status;
  element.className = 'status';
}

const time = (iso) => (iso ? new Date(iso).toLocaleString() : '');

function taskRow(task) {
  const row = document.createElement('tr');
  row.dataset.taskId = task.task_id;
  if (task.task_id === state.selectedId) row.classList.add('selected');
  cell(row, task.task_id).className = 'mono';
  cell(row, task.external_task_id);
  cell(row, task.request && task.request.element_name);
  statusBadge(cell(row, ''), task.status);
  cell(row, task.attempts);
  cell(row, time(task.updated_at));
  row.addEventListener('click', () => openTask(task.task_id));
  return row;
}

function listQuery(cursor) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  for (const [name, value] of Object.entries(state.filters)) if (value) query.set(name, value);
  if (cursor) query.set('cursor', cursor);
  return `/v1/tasks?${query}`;
}

/** The first page again (filters applied); "Load more" appends the next ones. */
async function loadTasks() {
  const page = await api('GET', listQuery());
  $('task-rows').replaceChildren(...page.data.map(taskRow));
  state.nextCursor = page.next_cursor;
  $('load-more').hidden = !page.next_cursor;
  $('empty').hidden = page.data.length > 0;
}

async function loadMore() {
  if (!state.nextCursor) return;
  const page = await api('GET', listQuery(state.nextCursor));
  $('task-rows').append(...page.data.map(taskRow));
  state.nextCursor = page.next_cursor;
  $('load-more').hidden = !page.next_cursor;
}

function field(list, name, value) {
  const dt = document.createElement('dt');
  dt.textContent = name;
  const dd = document.createElement('dd');
  dd.textContent = value == null || value === '' ? '—' : String(value);
  list.append(dt, dd);
}

function renderTask(task, events) {
  $('detail-id').textContent = task.task_id;
  statusBadge($('detail-status'), task.status);
  $('detail-status-message').textContent = task.status_message || '';
  const fields = $('detail-fields');
  fields.replaceChildren();
  field(fields, 'External id', task.external_task_id);
  field(fields, 'Kling task id', task.upstream_task_id);
  field(fields, 'Attempts', task.attempts);
  const queue = task.queue_position;
  field(
    fields,
    'Place in queue',
    queue ? `${queue.all} ahead (${queue.tenant} of yours)${queue.estimated_start_at ? `, starts about ${time(queue.estimated_start_at)}` : ''}` : null,
  );
  field(fields, 'Error', task.error ? `${task.error.code}: ${task.error.message}` : null);
  field(fields, 'Notifications to', task.request.callback_url);
  field(fields, 'Created', time(task.created_at));
  field(fields, 'Submitted', time(task.submitted_at));
  field(fields, 'Completed', time(task.completed_at));
  $('detail-request').textContent = JSON.stringify(task.request, null, 2);
  $('detail-result').textContent = task.result == null ? '—' : JSON.stringify(task.result, null, 2);
  $('event-rows').replaceChildren(
    ...events.map((event) => {
      const row = document.createElement('tr');
      cell(row, time(event.at));
      cell(row, event.type);
      cell(row, event.status);
      cell(row, event.detail ? JSON.stringify(event.detail) : '').className = 'mono';
      return row;
    }),
  );
  $('cancel-task').disabled = task.status !== 'queued';
  $('redeliver-task').disabled = !task.request.callback_url;
  for (const row of $('task-rows').children) row.classList.toggle('selected', row.dataset.taskId === task.task_id);
}

async function loadTask(taskId) {
  const [task, events] = await Promise.all([api('GET', `/v1/tasks/${encodeURIComponent(taskId)}`), api('GET', `/v1/tasks/${encodeURIComponent(taskId)}/events`)]);
  // Another task may have been opened while this one loaded.
  if (state.selectedId !== taskId) return;
  state.detailStatus = task.status;
  renderTask(task, events.data);
}

async function openTask(taskId) {
  state.selectedId = taskId;
  state.detailStatus = null;
  history.replaceState(null, '', `#task=${encodeURIComponent(taskId)}`);
  $('detail').hidden = false;
  $('workspace').classList.add('with-detail');
  try {
    await loadTask(taskId);
  } catch (error) {
    say(error.message, true);
  }
}

function closeTask() {
  state.selectedId = null;
  history.replaceState(null, '', '#');
  $('detail').hidden = true;
  $('workspace').classList.remove('with-detail');
}

async function act(label, method, path) {
  try {
    const answer = await api(method, path);
    say(label(answer));
    await Promise.all([loadTask(state.selectedId), loadTasks()]);
  } catch (error) {
    say(error.message, true);
  }
}

/** Keeps the list and an unfinished open task current; a finished task never changes, so it is not re-read. */
function startRefreshing() {
  stopRefreshing();
  state.timers.push(
    setInterval(() => {
      if ($('auto-refresh').checked) loadTasks().catch((error) => say(error.message, true));
    }, LIST_REFRESH_MS),
    setInterval(() => {
      if (!state.selectedId || TERMINAL.includes(state.detailStatus)) return;
      loadTask(state.selectedId).catch((error) => say(error.message, true));
    }, DETAIL_REFRESH_MS),
  );
}

function stopRefreshing() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
}

async function signIn(apiKey) {
  state.apiKey = apiKey;
  try {
    await loadTasks();
  } catch (error) {
    state.apiKey = '';
    sessionStorage.removeItem(KEY_STORAGE);
    $('workspace').hidden = true;
    say(error.message, true);
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, apiKey);
  $('workspace').hidden = false;
  $('forget-key').hidden = false;
  $('api-key').value = '';
  $('api-key').placeholder = `key ${apiKey.slice(0, 10)}… in use`;
  say('');
  startRefreshing();
  await openLinkedTask();
}

/** `/console#task=<task_id>` opens that task: on load, and when the link changes in the open page. */
async function openLinkedTask() {
  const linked = new URLSearchParams(location.hash.slice(1)).get('task');
  if (linked && linked !== state.selectedId && state.apiKey) await openTask(linked);
}

function signOut() {
  stopRefreshing();
  sessionStorage.removeItem(KEY_STORAGE);
  state.apiKey = '';
  closeTask();
  $('workspace').hidden = true;
  $('forget-key').hidden = true;
  $('api-key').placeholder = 'ket_…';
  say('Key forgotten.');
}

document.addEventListener('DOMContentLoaded', () => {
  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('api-key').value.trim();
    if (key) signIn(key);
  });
  $('forget-key').addEventListener('click', signOut);
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    state.filters = { status: $('filter-status').value, external_task_id: $('filter-external-id').value.trim() };
    loadTasks().catch((error) => say(error.message, true));
  });
  $('load-more').addEventListener('click', () => loadMore().catch((error) => say(error.message, true)));
  $('close-detail').addEventListener('click', closeTask);
  $('cancel-task').addEventListener('click', () =>
    act((task) => `Task ${task.task_id} canceled.`, 'POST', `/v1/tasks/${encodeURIComponent(state.selectedId)}/cancel`),
  );
  $('redeliver-task').addEventListener('click', () =>
    act((delivery) => `Notification queued again (delivery ${delivery.delivery_id}).`, 'POST', `/v1/tasks/${encodeURIComponent(state.selectedId)}/redeliver`),
  );
  window.addEventListener('hashchange', () => openLinkedTask());
  if (state.apiKey) signIn(state.apiKey);
});
