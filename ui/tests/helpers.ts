import { createMemoryHistory, createRouter } from 'vue-router'
import { routes } from '../src/router'

export async function testRouter(path = '/') {
  const router = createRouter({ history: createMemoryHistory(), routes })
  await router.push(path)
  await router.isReady()
  return router
}

export const flush = () => new Promise((r) => setTimeout(r, 0))
